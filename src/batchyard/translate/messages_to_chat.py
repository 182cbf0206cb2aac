"""A Messages request on an OpenAI-compatible server (`/v1/chat/completions`), and its
answer back, as faithfully as the formats allow.

Requests: system → a system message; text and image blocks → content parts;
assistant `tool_use` → `tool_calls`; user `tool_result` → `tool` messages (placed
before the rest of that user turn, as Chat Completions wants them right after
the assistant's calls); tools and `tool_choice` → functions (`strict` kept);
`stop_sequences` → `stop`; sampling parameters as they are; `output_config.format` →
`response_format`; `thinking` and `output_config.effort` → the reasoning controls
vLLM and SGLang read (`chat_template_kwargs.enable_thinking`, `thinking_token_budget`,
`reasoning_effort`).
Answers: the reasoning a reasoning parser split off (`reasoning_content`, or
`reasoning` in newer vLLM) → a `thinking` block (with an empty signature: nothing
signs it) before the rest; content and `tool_calls` → text and `tool_use` blocks;
`finish_reason` → `stop_reason` (a matched stop string, which vLLM reports, →
`stop_sequence`); usage → usage.
"""

from __future__ import annotations

import json
from typing import Any

from batchyard import ids
from batchyard.translate.chat_ending import stop_of, usage_from_chat
from batchyard.translate.chat_reasoning import reasoning_controls, reasoning_of
from batchyard.wire.messages import (
    ContentBlock,
    DocumentBlock,
    ImageBlock,
    JsonSchemaFormat,
    Message,
    MessageCreateParams,
    StopReason,
    TextBlock,
    TextContent,
    ThinkingBlock,
    ThinkingContent,
    ToolResultBlock,
    ToolUseBlock,
    ToolUseContent,
    Usage,
    text_of,
)
from batchyard.wire.sources import Base64Source, TextSource, UrlSource
from batchyard.wire.streaming import (
    ContentBlockDelta,
    ContentBlockStart,
    ContentBlockStop,
    InputJsonDelta,
    SignatureDelta,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    message_end,
    message_start,
)


class Untranslatable(ValueError):
    """The request uses something Chat Completions cannot express."""


def _image_part(block: ImageBlock) -> dict[str, Any]:
    source = block.source
    if isinstance(source, Base64Source):
        url = f"data:{source.media_type};base64,{source.data}"
    elif isinstance(source, UrlSource):
        url = source.url
    else:
        raise Untranslatable("image blocks with a file source cannot be sent to this engine")
    return {"type": "image_url", "image_url": {"url": url}}


def _user_parts(blocks: list[Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for block in blocks:
        if isinstance(block, TextBlock):
            parts.append({"type": "text", "text": block.text})
        elif isinstance(block, ImageBlock):
            parts.append(_image_part(block))
        elif isinstance(block, DocumentBlock) and isinstance(block.source, TextSource):
            parts.append({"type": "text", "text": block.source.data})
        elif isinstance(block, ThinkingBlock | ToolResultBlock):
            continue
        else:
            kind = getattr(block, "type", type(block).__name__)
            raise Untranslatable(f"{kind} blocks cannot be sent to this engine")
    return parts


def _simplify(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A content of only text parts becomes one string (every server accepts that)."""
    if all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts


def _tool_result_text(block: ToolResultBlock) -> str:
    if block.content is None:
        text = ""
    elif isinstance(block.content, str):
        text = block.content
    else:
        text = "\n".join(b.text for b in block.content if isinstance(b, TextBlock))
    return f"Error: {text}" if block.is_error else text


def to_chat_messages(params: MessageCreateParams) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    system = text_of(params.system)
    if system:
        out.append({"role": "system", "content": system})
    for message in params.messages:
        content = message.content
        if isinstance(content, str):
            out.append({"role": message.role, "content": content})
            continue
        if message.role == "assistant":
            text = "".join(b.text for b in content if isinstance(b, TextBlock))
            calls = [
                {
                    "id": b.id,
                    "type": "function",
                    "function": {"name": b.name, "arguments": json.dumps(b.input)},
                }
                for b in content
                if isinstance(b, ToolUseBlock)
            ]
            turn: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                turn["tool_calls"] = calls
            out.append(turn)
            continue
        for block in content:
            if isinstance(block, ToolResultBlock):
                out.append(
                    {
                        "role": "tool",
                        "tool_call_id": block.tool_use_id,
                        "content": _tool_result_text(block),
                    }
                )
        parts = _user_parts(content)
        if parts:
            out.append({"role": "user", "content": _simplify(parts)})
    return out


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    if "input_schema" not in tool:
        raise Untranslatable(
            f"tool {tool.get('name')!r}: only custom tools (with input_schema) are supported"
        )
    function: dict[str, Any] = {"name": tool["name"], "parameters": tool["input_schema"]}
    if tool.get("description"):
        function["description"] = tool["description"]
    if tool.get("strict") is True:
        function["strict"] = True
    return {"type": "function", "function": function}


def _tool_choice(choice: dict[str, Any]) -> tuple[Any, bool | None]:
    """(`tool_choice`, `parallel_tool_calls`) for the Chat Completions request."""
    kind = choice.get("type")
    parallel = False if choice.get("disable_parallel_tool_use") else None
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", None
    if kind == "tool":
        return {"type": "function", "function": {"name": choice["name"]}}, parallel
    raise Untranslatable(f"tool_choice type {kind!r} is not supported")


def _response_format(params: MessageCreateParams) -> dict[str, Any] | None:
    """`output_config.format` as the `response_format` vLLM, SGLang and llama-server
    constrain decoding with (the name is required by the format and means nothing)."""
    fmt = params.output_config.format if params.output_config else None
    if fmt is None:
        return None
    if isinstance(fmt, JsonSchemaFormat):
        schema = {"name": "output", "schema": fmt.schema, "strict": True}
        return {"type": "json_schema", "json_schema": schema}
    return {"type": "json_object"}


def to_chat_request(params: MessageCreateParams, model: str) -> dict[str, Any]:
    request: dict[str, Any] = {
        "model": model,
        "messages": to_chat_messages(params),
        "max_tokens": params.max_tokens,
    }
    if params.stop_sequences:
        request["stop"] = params.stop_sequences
    for name in ("temperature", "top_p", "top_k"):
        value = getattr(params, name)
        if value is not None:
            request[name] = value
    if params.tools:
        request["tools"] = [_tool(t) for t in params.tools]
    if params.tool_choice:
        choice, parallel = _tool_choice(params.tool_choice)
        if params.tools or choice == "none":
            request["tool_choice"] = choice
        if parallel is not None:
            request["parallel_tool_calls"] = parallel
    response_format = _response_format(params)
    if response_format is not None:
        request["response_format"] = response_format
    request.update(reasoning_controls(params))
    user = (params.metadata or {}).get("user_id")
    if user:
        request["user"] = user
    return request


class MalformedReply(ValueError):
    """The server's answer is not a Chat Completion."""


def _with_tool_calls(stop_reason: StopReason, called: bool) -> StopReason:
    """A message that calls a tool ends `tool_use` (vLLM ends a named tool_choice's call
    with `finish_reason: "stop"`), and one that calls none does not."""
    if called and stop_reason == "end_turn":
        return "tool_use"
    if not called and stop_reason == "tool_use":
        return "end_turn"
    return stop_reason


def from_chat_response(body: dict[str, Any], params: MessageCreateParams, model: str) -> Message:
    try:
        choice = body["choices"][0]
        reply = choice["message"]
        usage = body.get("usage") or {}
        content: list[ContentBlock] = []
        thought = reasoning_of(reply)
        if thought:
            content.append(ThinkingContent(thinking=thought, signature=""))
        if reply.get("content"):
            content.append(TextContent(text=reply["content"]))
        for call in reply.get("tool_calls") or []:
            function = call["function"]
            arguments = function.get("arguments") or "{}"
            try:
                tool_input = json.loads(arguments)
            except json.JSONDecodeError:
                raise MalformedReply(
                    f"tool call arguments are not JSON: {arguments[:200]!r}"
                ) from None
            if not isinstance(tool_input, dict):  # a tool's input is an object
                raise MalformedReply(
                    f"tool call arguments are not a JSON object: {arguments[:200]!r}"
                )
            content.append(
                ToolUseContent(
                    id=call.get("id") or ids.new_tool_use_id(),
                    name=function["name"],
                    input=tool_input,
                )
            )
        stop_reason, stop_sequence = stop_of(
            choice.get("finish_reason"), choice.get("stop_reason"), params
        )
        stop_reason = _with_tool_calls(
            stop_reason, any(isinstance(b, ToolUseContent) for b in content)
        )
        return Message(
            id=ids.message_id(),
            model=model,
            content=content,
            stop_reason=stop_reason,
            stop_sequence=stop_sequence,
            usage=usage_from_chat(usage),
        )
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise MalformedReply(f"not a chat completion ({exc!r})") from None


class ChatStreamTranslator:
    """Chat Completions stream chunks → Anthropic stream events, chunk by chunk.

    Reasoning deltas open a `thinking` block (its pieces become `thinking_delta`s,
    and an empty `signature_delta` ends it, as the hosted API ends one); text deltas
    open a text block; each new tool call index opens a `tool_use` block whose
    argument pieces become `input_json_delta`s; the finish reason and the usage
    chunk (`stream_options.include_usage`) become `message_delta`.
    """

    def __init__(self, params: MessageCreateParams, model: str) -> None:
        self.params = params
        self.model = model
        self.index = -1
        self.open: str | None = None  # "thinking", "text" or "tool:<openai index>"
        self.finish: str | None = None
        self.matched: Any = None
        self.called = False
        """Whether the answer calls a tool (its stop reason is then `tool_use`)."""
        self.usage: dict[str, Any] = {}
        self.started = False

    def start(self) -> list[StreamEvent]:
        self.started = True
        head = Message(
            id=ids.message_id(),
            model=self.model,
            content=[],
            stop_reason=None,
            stop_sequence=None,
            usage=Usage(input_tokens=0, output_tokens=0),
        )
        return [message_start(head)]

    def _open(self, kind: str, block: ContentBlock) -> list[StreamEvent]:
        events = self._close()
        self.index += 1
        self.open = kind
        events.append(ContentBlockStart(self.index, block))
        return events

    def _close(self) -> list[StreamEvent]:
        if self.open is None:
            return []
        events: list[StreamEvent] = []
        if self.open == "thinking":
            events.append(ContentBlockDelta(self.index, SignatureDelta("")))
        self.open = None
        events.append(ContentBlockStop(self.index))
        return events

    def feed(self, chunk: dict[str, Any]) -> list[StreamEvent]:
        try:
            events: list[StreamEvent] = [] if self.started else self.start()
            if chunk.get("usage"):
                self.usage = chunk["usage"]
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                thought = reasoning_of(delta)
                if thought:
                    if self.open != "thinking":
                        events += self._open("thinking", ThinkingContent("", ""))
                    events.append(ContentBlockDelta(self.index, ThinkingDelta(thought)))
                if delta.get("content"):
                    if self.open != "text":
                        events += self._open("text", TextContent(text=""))
                    events.append(ContentBlockDelta(self.index, TextDelta(delta["content"])))
                for call in delta.get("tool_calls") or []:
                    kind = f"tool:{call.get('index', 0)}"
                    function = call.get("function") or {}
                    if self.open != kind:
                        self.called = True
                        block = ToolUseContent(
                            id=call.get("id") or ids.new_tool_use_id(),
                            name=function.get("name") or "",
                            input={},
                        )
                        events += self._open(kind, block)
                    if function.get("arguments"):
                        events.append(
                            ContentBlockDelta(self.index, InputJsonDelta(function["arguments"]))
                        )
                if choice.get("finish_reason"):
                    self.finish = choice["finish_reason"]
                    self.matched = choice.get("stop_reason")
            return events
        except (AttributeError, TypeError) as exc:
            raise MalformedReply(f"not a chat completion chunk ({exc!r})") from None

    def end(self) -> list[StreamEvent]:
        events: list[StreamEvent] = [] if self.started else self.start()
        events += self._close()
        stop_reason, stop_sequence = stop_of(self.finish, self.matched, self.params)
        stop_reason = _with_tool_calls(stop_reason, self.called)
        usage = usage_from_chat(self.usage)
        events += message_end(
            stop_reason,
            stop_sequence,
            usage.output_tokens,
            usage.input_tokens,
            cache_read_input_tokens=usage.cache_read_input_tokens,
        )
        return events
