"""Messages API structs: the request (`params` of a batch entry) and the `Message` answer.

The request side validates what the hosted API validates for the blocks an engine
reads (text, images, documents, tools, thinking); other known block types pass
through untouched, unknown ones are rejected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

import msgspec

from batchyard.wire.pass_through import PASS_THROUGH_BLOCKS
from batchyard.wire.sources import DocumentSource, ImageSource

# --- request -----------------------------------------------------------------


class TextBlock(msgspec.Struct, tag="text", tag_field="type"):
    text: str
    cache_control: dict[str, Any] | None = None
    citations: list[dict[str, Any]] | None = None


class ImageBlock(msgspec.Struct, tag="image", tag_field="type"):
    source: ImageSource
    cache_control: dict[str, Any] | None = None


class DocumentBlock(msgspec.Struct, tag="document", tag_field="type"):
    source: DocumentSource
    title: str | None = None
    context: str | None = None
    citations: dict[str, Any] | None = None
    cache_control: dict[str, Any] | None = None


class ToolUseBlock(msgspec.Struct, tag="tool_use", tag_field="type"):
    id: str
    name: str
    input: dict[str, Any]
    cache_control: dict[str, Any] | None = None


class ToolResultBlock(msgspec.Struct, tag="tool_result", tag_field="type"):
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock | DocumentBlock] | None = None
    is_error: bool | None = None
    cache_control: dict[str, Any] | None = None


class ThinkingBlock(msgspec.Struct, tag="thinking", tag_field="type"):
    thinking: str
    signature: str


class RedactedThinkingBlock(msgspec.Struct, tag="redacted_thinking", tag_field="type"):
    data: str


ContentBlockParam = (
    TextBlock
    | ImageBlock
    | DocumentBlock
    | ToolUseBlock
    | ToolResultBlock
    | ThinkingBlock
    | RedactedThinkingBlock
)
if TYPE_CHECKING:
    _AnyBlock = ContentBlockParam
else:
    _AnyBlock = Union[(*ContentBlockParam.__args__, *PASS_THROUGH_BLOCKS)]


class MessageParam(msgspec.Struct):
    role: Literal["user", "assistant"]
    content: str | list[_AnyBlock]


class JsonSchemaFormat(
    msgspec.Struct, tag="json_schema", tag_field="type", forbid_unknown_fields=True
):
    """`output_config.format`: the answer's text is JSON valid against `schema`."""

    schema: dict[str, Any]


class JsonObjectFormat(
    msgspec.Struct, tag="json_object", tag_field="type", forbid_unknown_fields=True
):
    """Any JSON object (the OpenAI dialect's `response_format: {"type": "json_object"}`;
    a batchyard extension on the Messages API)."""


Effort = Literal["low", "medium", "high", "xhigh", "max"]


class OutputConfig(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    format: JsonSchemaFormat | JsonObjectFormat | None = None
    effort: Effort | None = None
    task_budget: dict[str, Any] | None = None
    """A token budget across an agent's contexts (beta): the hosted platform's."""


class MessageCreateParams(msgspec.Struct, dict=True, forbid_unknown_fields=True):
    """`POST /v1/messages` body, and `params` of a batch entry.

    Every key the SDKs send is a field here (what each engine does with it:
    `engines/features.py`); a key no SDK sends is refused, as the hosted API does."""

    model: Annotated[str, msgspec.Meta(min_length=1)]
    max_tokens: Annotated[int, msgspec.Meta(ge=1)]
    messages: Annotated[list[MessageParam], msgspec.Meta(min_length=1)]
    system: str | list[TextBlock] | None = None
    stop_sequences: list[str] | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None
    top_p: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None
    top_k: Annotated[int, msgspec.Meta(ge=0)] | None = None
    metadata: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
    stream: bool | None = None
    service_tier: str | None = None
    cache_control: dict[str, Any] | None = None
    """Automatic prompt caching: a breakpoint at the end of the prompt."""
    output_config: OutputConfig | None = None
    speed: Literal["standard", "fast"] | None = None
    inference_geo: str | None = None
    diagnostics: dict[str, Any] | None = None
    container: Any = None
    context_management: Any = None
    mcp_servers: list[Any] | None = None
    # beta generation keys (`client.beta.messages`)
    compaction: Any = None
    fallbacks: Any = None
    fallback_credit_token: Any = None
    billing_policy: Any = None
    thread: Any = None


class CountTokensParams(msgspec.Struct, forbid_unknown_fields=True):
    """`POST /v1/messages/count_tokens` body: a Messages request without `max_tokens`."""

    model: Annotated[str, msgspec.Meta(min_length=1)]
    messages: Annotated[list[MessageParam], msgspec.Meta(min_length=1)]
    system: str | list[TextBlock] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
    cache_control: dict[str, Any] | None = None
    output_config: OutputConfig | None = None
    mcp_servers: list[Any] | None = None
    context_management: Any = None
    container: Any = None
    speed: Literal["standard", "fast"] | None = None
    inference_geo: str | None = None
    diagnostics: dict[str, Any] | None = None
    compaction: Any = None
    billing_policy: Any = None

    def as_create_params(self) -> MessageCreateParams:
        return MessageCreateParams(
            model=self.model,
            max_tokens=1,
            messages=self.messages,
            system=self.system,
            tools=self.tools,
            tool_choice=self.tool_choice,
            thinking=self.thinking,
            cache_control=self.cache_control,
            output_config=self.output_config,
            mcp_servers=self.mcp_servers,
            context_management=self.context_management,
            container=self.container,
            speed=self.speed,
            inference_geo=self.inference_geo,
            diagnostics=self.diagnostics,
            compaction=self.compaction,
            billing_policy=self.billing_policy,
        )


class CountTokensResult(msgspec.Struct):
    input_tokens: int


def text_of(content: str | list[Any] | None) -> str:
    """The plain text of a message's content (text blocks only)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(b.text for b in content if isinstance(b, TextBlock))


# --- response ------------------------------------------------------------------

StopReason = Literal[
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "tool_use",
    "pause_turn",
    "refusal",
    "model_context_window_exceeded",
]


class TextContent(msgspec.Struct, tag="text", tag_field="type"):
    text: str


class ToolUseContent(msgspec.Struct, tag="tool_use", tag_field="type"):
    id: str
    name: str
    input: dict[str, Any]


class ThinkingContent(msgspec.Struct, tag="thinking", tag_field="type"):
    thinking: str
    signature: str


class RedactedThinkingContent(msgspec.Struct, tag="redacted_thinking", tag_field="type"):
    data: str


ContentBlock = TextContent | ToolUseContent | ThinkingContent | RedactedThinkingContent


class CacheCreationUsage(msgspec.Struct):
    ephemeral_5m_input_tokens: int = 0
    ephemeral_1h_input_tokens: int = 0


class Usage(msgspec.Struct, omit_defaults=True):
    input_tokens: int
    """The prompt's tokens neither read from nor written to the cache."""
    output_tokens: int
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation: CacheCreationUsage | None = None
    service_tier: Literal["standard", "priority", "batch"] | None = None


class Message(msgspec.Struct):
    id: str
    model: str
    content: list[ContentBlock]
    stop_reason: StopReason | None
    stop_sequence: str | None
    usage: Usage
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"


class SucceededResult(msgspec.Struct, tag="succeeded", tag_field="type"):
    message: Message
