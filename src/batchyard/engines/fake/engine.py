"""A deterministic engine for tests and load: no model, exact `usage`, optional faults.

Its "tokens" are whitespace-separated words. The reply is a fixed text derived
from the request (a digest and the last user words), so the same request gives
the same reply. `max_tokens` and `stop_sequences` are honoured the way a model's
would be. Under `output_config.format` the text is a JSON document valid against
the schema (`engines/fake/json_example.py`); a forced tool (`tool_choice` `tool`, or `any`)
is called with an input made from its `input_schema`.
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import anyio

from batchyard import ids
from batchyard.engines.base import stream_whole_message
from batchyard.engines.fake import json_example as fake_json
from batchyard.engines.slots import Priority, PrioritySlots
from batchyard.errors import EngineError
from batchyard.wire.messages import (
    JsonObjectFormat,
    JsonSchemaFormat,
    Message,
    MessageCreateParams,
    StopReason,
    TextContent,
    ToolUseContent,
    Usage,
    text_of,
)
from batchyard.wire.request_checks import forced_tools
from batchyard.wire.streaming import StreamEvent

_FAULTS = (
    ("overloaded_error", "Overloaded (injected by the fake engine)"),
    ("rate_limit_error", "Rate limited (injected by the fake engine)"),
    ("api_error", "Internal error (injected by the fake engine)"),
)


def prompt_text(params: MessageCreateParams) -> str:
    parts = [text_of(params.system)]
    parts.extend(text_of(m.content) for m in params.messages)
    return "\n".join(p for p in parts if p)


def _last_user_text(params: MessageCreateParams) -> str:
    return next((text_of(m.content) for m in reversed(params.messages) if m.role == "user"), "")


def reply_text(params: MessageCreateParams, prompt: str) -> str:
    """The answer's text: a digest and an echo, or under `output_config.format` a JSON
    document (an object holding that text, for `json_object`)."""
    echo = " ".join(_last_user_text(params).split()[:32])
    text = f"fake reply {zlib.crc32(prompt.encode()):08x} to: {echo}".rstrip()
    fmt = params.output_config.format if params.output_config else None
    if isinstance(fmt, JsonSchemaFormat):
        document = _document(fmt.schema, params, prompt, "output_config.format.schema")
        return json.dumps(document, ensure_ascii=False)
    if isinstance(fmt, JsonObjectFormat):
        return json.dumps({"reply": text}, ensure_ascii=False)
    return text


def _document(schema: dict[str, Any], params: MessageCreateParams, prompt: str, where: str) -> Any:
    """A document valid against `schema` (found at `where` in the request), its strings
    the last user words."""
    words = _last_user_text(params).split() or prompt.split()
    try:
        return fake_json.example(schema, words, zlib.crc32(prompt.encode()))
    except fake_json.UnsupportedSchema as exc:
        raise EngineError("invalid_request_error", f"{where}: {exc}", retryable=False) from None


def forced_tool(params: MessageCreateParams) -> dict[str, Any] | None:
    """The tool the request makes the model call: the one `tool_choice` names, or
    with `{"type": "any"}` the first client tool."""
    forced = forced_tools(params)
    return forced[0][1] if forced else None


class _Answer(NamedTuple):
    content: TextContent | ToolUseContent
    stop_reason: StopReason
    stop_sequence: str | None
    output_tokens: int


def _text_answer(params: MessageCreateParams, text: str) -> _Answer:
    """`text` cut where a model would stop: at a stop sequence, or after `max_tokens` words."""
    words = text.split(" ")
    stop_reason: StopReason = "end_turn"
    stop_sequence: str | None = None
    if params.stop_sequences:
        hits = [(text.find(s), s) for s in params.stop_sequences if s and s in text]
        if hits:
            at, stop_sequence = min(hits)
            text = text[:at]
            stop_reason = "stop_sequence"
            words = text.split()
    if len(words) > params.max_tokens:
        words = words[: params.max_tokens]
        text = " ".join(words)
        stop_reason, stop_sequence = "max_tokens", None
    return _Answer(TextContent(text=text), stop_reason, stop_sequence, len(words))


def _tool_answer(params: MessageCreateParams, tool: dict[str, Any], prompt: str) -> _Answer:
    """A call of `tool` with an input valid against its `input_schema`; past `max_tokens`
    words the call is cut off, and its input left empty."""
    schema = tool.get("input_schema") or {"type": "object"}
    value = _document(schema, params, prompt, f"tools.{tool['name']}.input_schema")
    arguments = value if isinstance(value, dict) else {}
    words = len(json.dumps(arguments, ensure_ascii=False).split(" "))
    stop_reason: StopReason = "tool_use"
    if words > params.max_tokens:
        arguments, words, stop_reason = {}, params.max_tokens, "max_tokens"
    call = ToolUseContent(id=ids.new_tool_use_id(), name=tool["name"], input=arguments)
    return _Answer(call, stop_reason, None, words)


class FakeEngine:
    features: frozenset[str] = frozenset()  # none of engines/features.py

    def __init__(
        self,
        *,
        latency_ms: float = 0.0,
        error_rate: float = 0.0,
        hang_rate: float = 0.0,
        capacity: int = 1024,
        seed: int | None = None,
        name: str = "fake",
    ) -> None:
        self.name = name
        self.latency = latency_ms / 1000.0
        self.error_rate = error_rate
        self.hang_rate = hang_rate
        self.capacity = capacity
        self.slots = PrioritySlots(capacity)
        self._rng = random.Random(seed)

    def stream_message(
        self, params: MessageCreateParams, *, priority: Priority = Priority.BATCH
    ) -> AsyncIterator[StreamEvent]:
        return stream_whole_message(self, params, priority)

    async def count_tokens(self, params: MessageCreateParams) -> int:
        return len(prompt_text(params).split())

    async def create_message(
        self, params: MessageCreateParams, *, priority: Priority = Priority.BATCH
    ) -> Message:
        if self.latency > 0:
            await anyio.sleep(self.latency)
        if self.hang_rate > 0 and self._rng.random() < self.hang_rate:
            await anyio.sleep(3600)  # a call that never answers: a lost connection, a stuck GPU
        if self.error_rate > 0 and self._rng.random() < self.error_rate:
            error_type, message = self._rng.choice(_FAULTS)
            raise EngineError(error_type, message, retryable=True)
        prompt = prompt_text(params)
        tool = forced_tool(params)
        if tool is not None:
            answer = _tool_answer(params, tool, prompt)
        else:
            answer = _text_answer(params, reply_text(params, prompt))
        return Message(
            id=ids.message_id(),
            model=params.model,
            content=[answer.content],
            stop_reason=answer.stop_reason,
            stop_sequence=answer.stop_sequence,
            usage=Usage(input_tokens=len(prompt.split()), output_tokens=answer.output_tokens),
        )

    async def aclose(self) -> None:
        return None
