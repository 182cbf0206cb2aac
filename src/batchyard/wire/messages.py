"""Messages API structs: the request (`params` of a batch entry) and the `Message` answer.

The request side validates what the hosted API validates for the blocks an engine
reads (text, images, documents, tools, thinking); other known block types pass
through untouched, unknown ones are rejected.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple, TypeVar, Union

import msgspec

from batchyard.wire.errors import InvalidParams as InvalidParams  # the decoders raise it
from batchyard.wire.errors import format_validation_error
from batchyard.wire.pass_through import PASS_THROUGH_BLOCKS
from batchyard.wire.request_checks import check_request
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


_P = TypeVar("_P", MessageCreateParams, CountTokensParams)
_params_decoder = msgspec.json.Decoder(MessageCreateParams)


_count_decoder = msgspec.json.Decoder(CountTokensParams)


def _decode(decoder: msgspec.json.Decoder[_P], raw: bytes | bytearray | memoryview) -> _P:
    """Decode and check a Messages-shaped body; any problem is an InvalidParams."""
    try:
        params = decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise InvalidParams(_extra_input(str(exc)) or format_validation_error(exc)) from None
    if params.messages[0].role != "user":
        raise InvalidParams("messages: the first message must use the `user` role")
    check_cache_control(params)
    check_request(params)
    return params


_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `(.+?)`(?: - at `\$\.?(.*)`)?$")


def _extra_input(error: str) -> str | None:
    """A key no Messages request has, as the hosted API words its refusal."""
    match = _UNKNOWN_FIELD.match(error)
    if match is None:
        return None
    key, at = match.group(1), (match.group(2) or "").replace("[", ".").replace("]", "")
    return f"{at + '.' if at else ''}{key}: Extra inputs are not permitted"


CACHE_TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
"""The `ttl`s a `cache_control` breakpoint may ask for (the hosted API's), in seconds."""
MAX_CACHE_BREAKPOINTS = 4


class CacheMark(NamedTuple):
    """A `cache_control` breakpoint and where it is: `system` (block `block`), `messages`
    (message `message`, block `block`), `tools` (tool `block`) or the top level."""

    where: str
    mark: object
    part: Literal["top", "system", "messages", "tools"]
    message: int = -1
    block: int = -1


def cache_marks(params: MessageCreateParams | CountTokensParams) -> list[CacheMark]:
    """Every `cache_control` of a request, in prompt order (the top-level one first)."""
    marks: list[CacheMark] = []
    if params.cache_control is not None:
        marks.append(CacheMark("cache_control", params.cache_control, "top"))
    if isinstance(params.system, list):
        marks += [
            CacheMark(f"system.{j}.cache_control", b.cache_control, "system", block=j)
            for j, b in enumerate(params.system)
            if b.cache_control is not None
        ]
    for i, message in enumerate(params.messages):
        if not isinstance(message.content, str):
            for j, block in enumerate(message.content):
                mark = getattr(block, "cache_control", None)
                if mark is not None:
                    where = f"messages.{i}.content.{j}.cache_control"
                    marks.append(CacheMark(where, mark, "messages", i, j))
    for k, tool in enumerate(params.tools or []):
        if isinstance(tool, dict) and tool.get("cache_control") is not None:
            where = f"tools.{k}.cache_control"
            marks.append(CacheMark(where, tool["cache_control"], "tools", block=k))
    return marks


def check_cache_control(params: MessageCreateParams | CountTokensParams) -> None:
    """`cache_control` as the hosted API takes it: `{"type": "ephemeral"}` with an optional
    `ttl` of 5m or 1h, at most four breakpoints."""
    marks = cache_marks(params)
    if len(marks) > MAX_CACHE_BREAKPOINTS:
        raise InvalidParams(
            f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be"
            f" provided. Found {len(marks)}."
        )
    for where, mark, *_ in marks:
        if not isinstance(mark, dict) or mark.get("type") != "ephemeral":
            raise InvalidParams(f"{where}.type: Input should be 'ephemeral'")
        if mark.get("ttl", "5m") not in CACHE_TTL_SECONDS:
            raise InvalidParams(f"{where}.ttl: Input should be '5m' or '1h'")
        unknown = sorted(set(mark) - {"type", "ttl"})
        if unknown:
            raise InvalidParams(f"{where}.{unknown[0]}: Extra inputs are not permitted")


def decode_params(raw: bytes | bytearray | memoryview) -> MessageCreateParams:
    return _kept(_decode(_params_decoder, raw), raw)


def decode_count_params(raw: bytes | bytearray | memoryview) -> MessageCreateParams:
    return _kept(_decode(_count_decoder, raw).as_create_params(), raw)


def _kept(params: MessageCreateParams, raw: bytes | bytearray | memoryview) -> MessageCreateParams:
    params.__dict__["body"] = bytes(raw)
    return params


def body_as_sent(params: MessageCreateParams) -> bytes | None:
    """The JSON the request was decoded from, every block and field as the client sent it
    (for an upstream that takes all of it); None for a request built here."""
    body: bytes | None = params.__dict__.get("body")
    return body


def with_model(params: MessageCreateParams, model: str) -> MessageCreateParams:
    """`params` for another model name, the body as sent kept with it."""
    renamed = msgspec.structs.replace(params, model=model)
    renamed.__dict__.update(params.__dict__)
    return renamed


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
