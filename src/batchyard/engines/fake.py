"""A deterministic engine for tests and load: no model, exact `usage`, optional faults.

Its "tokens" are whitespace-separated words. The reply is a fixed text derived
from the request (a digest and the last user words), so the same request gives
the same reply. `max_tokens` and `stop_sequences` are honoured the way a model's
would be.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import AsyncIterator

import anyio

from batchyard import ids
from batchyard.engines.base import EngineError, stream_whole_message
from batchyard.engines.slots import PrioritySlots
from batchyard.wire.messages import (
    Message,
    MessageCreateParams,
    TextContent,
    Usage,
    text_of,
)
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


def reply_text(params: MessageCreateParams, prompt: str) -> str:
    last_user = next(
        (text_of(m.content) for m in reversed(params.messages) if m.role == "user"), ""
    )
    echo = " ".join(last_user.split()[:32])
    return f"fake reply {zlib.crc32(prompt.encode()):08x} to: {echo}".rstrip()


class FakeEngine:
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

    def stream_message(self, params: MessageCreateParams) -> AsyncIterator[StreamEvent]:
        return stream_whole_message(self, params)

    async def count_tokens(self, params: MessageCreateParams) -> int:
        return len(prompt_text(params).split())

    async def create_message(self, params: MessageCreateParams) -> Message:
        if self.latency > 0:
            await anyio.sleep(self.latency)
        if self.hang_rate > 0 and self._rng.random() < self.hang_rate:
            await anyio.sleep(3600)  # a call that never answers: a lost connection, a stuck GPU
        if self.error_rate > 0 and self._rng.random() < self.error_rate:
            error_type, message = self._rng.choice(_FAULTS)
            raise EngineError(error_type, message, retryable=True)
        prompt = prompt_text(params)
        text = reply_text(params, prompt)
        words = text.split(" ")
        stop_reason: str = "end_turn"
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
        return Message(
            id=ids.message_id(),
            model=params.model,
            content=[TextContent(text=text)],
            stop_reason=stop_reason,  # type: ignore[arg-type]
            stop_sequence=stop_sequence,
            usage=Usage(
                input_tokens=len(prompt.split()),
                output_tokens=len(words),
            ),
        )

    async def aclose(self) -> None:
        return None
