"""Run one request on the engine its model routes to, inside that engine's priority slots.

Shared by the worker (batch priority) and the API (interactive priority), so one
engine's capacity is one pool and interactive calls go first.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import msgspec

from batchyard.engines.config import SamplingDefaults
from batchyard.engines.features import refuse_unsupported
from batchyard.engines.router import EngineRouter, Resolved
from batchyard.engines.slots import Priority
from batchyard.wire.messages import Message, MessageCreateParams
from batchyard.wire.params import with_model
from batchyard.wire.streaming import MessageStart, StreamEvent


def _for_engine(resolved: Resolved, params: MessageCreateParams) -> MessageCreateParams:
    engine = resolved.engine
    refuse_unsupported(params, engine.name, getattr(engine, "features", frozenset()))
    if resolved.sampling is not None:
        params = with_sampling(params, resolved.sampling)
    if resolved.upstream == params.model:
        return params
    return with_model(params, resolved.upstream)


def with_sampling(params: MessageCreateParams, defaults: SamplingDefaults) -> MessageCreateParams:
    """`params` with the model's sampling defaults where the request left them out (an
    upstream that takes the body as sent gets them too: `engines/remote/anthropic.py`)."""
    missing = {
        name: value
        for name in ("temperature", "top_p", "top_k")
        if getattr(params, name) is None and (value := getattr(defaults, name)) is not None
    }
    if not missing:
        return params
    filled = msgspec.structs.replace(params, **missing)
    filled.__dict__.update(params.__dict__)
    return filled


async def create_message(
    router: EngineRouter, params: MessageCreateParams, priority: Priority
) -> Message:
    """Raises UnknownModel, EngineError."""
    resolved = router.resolve(params.model)
    request = _for_engine(resolved, params)
    slots = resolved.engine.slots
    await slots.acquire(priority)
    try:
        message = await resolved.engine.create_message(request, priority=priority)
    finally:
        slots.release()
    message.model = resolved.model
    return message


async def stream_message(
    router: EngineRouter, params: MessageCreateParams, priority: Priority
) -> AsyncGenerator[StreamEvent, None]:
    """Raises UnknownModel before the first event; EngineError at any point."""
    resolved = router.resolve(params.model)
    request = _for_engine(resolved, params)
    slots = resolved.engine.slots
    await slots.acquire(priority)
    try:
        async for event in resolved.engine.stream_message(request, priority=priority):
            if isinstance(event, MessageStart):
                event.message.model = resolved.model
            yield event
    finally:
        slots.release()


async def count_tokens(router: EngineRouter, params: MessageCreateParams) -> int:
    resolved = router.resolve(params.model)
    return await resolved.engine.count_tokens(_for_engine(resolved, params))
