"""The engine contract: one Messages request in, one Message (or its events) out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from batchyard.engines.slots import Priority, PrioritySlots
from batchyard.wire.messages import Message, MessageCreateParams
from batchyard.wire.streaming import StreamEvent, events_from_message


class Engine(Protocol):
    name: str
    capacity: int
    """The most requests the engine serves at once (an upper bound: where the engine
    adapts its concurrency, `slots.capacity` is the level now)."""
    slots: PrioritySlots
    """Shared by the worker (batch) and the API (interactive, served first); its
    `capacity` is the live number of requests the engine takes at once."""
    features: frozenset[str]
    """What of `engines/features.py` it honours; a request using anything else is refused."""

    async def create_message(
        self, params: MessageCreateParams, *, priority: Priority = Priority.BATCH
    ) -> Message:
        """`priority`: whose call it is, for engines that order their own queue by it."""
        ...

    def stream_message(
        self, params: MessageCreateParams, *, priority: Priority = Priority.BATCH
    ) -> AsyncIterator[StreamEvent]: ...

    async def count_tokens(self, params: MessageCreateParams) -> int:
        """Input tokens of the request as this engine's tokenizer counts them."""
        ...

    async def aclose(self) -> None: ...


async def stream_whole_message(
    engine: Engine, params: MessageCreateParams, priority: Priority = Priority.BATCH
) -> AsyncIterator[StreamEvent]:
    """`stream_message` for engines that produce a whole Message: the same message in events."""
    message = await engine.create_message(params, priority=priority)
    for event in events_from_message(message):
        yield event
