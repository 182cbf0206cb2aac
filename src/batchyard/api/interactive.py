"""What the interactive routes (`/v1/messages`, `/v1/complete`, `/v1/chat/completions`)
share: the body limit, an unknown model as a 404, one call answered whole or streamed,
and counting each call's usage."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import contextmanager

import msgspec
from starlette.requests import Request
from starlette.responses import StreamingResponse

from batchyard.api import state
from batchyard.engines import dispatch
from batchyard.engines.router import UnknownModel
from batchyard.engines.slots import Priority
from batchyard.errors import EngineError, NotFound
from batchyard.metrics import Metrics
from batchyard.services.file_content import resolve_files
from batchyard.store.records import TokenUsage
from batchyard.wire.errors import ErrorObject, ErrorResponse
from batchyard.wire.messages import Message, MessageCreateParams, Usage
from batchyard.wire.streaming import MessageDelta, MessageStart, StreamEvent, merge_delta_usage

log = logging.getLogger("batchyard.api")

MAX_MESSAGE_BYTES = 32 * 1024 * 1024


@contextmanager
def engine_errors(model: str) -> Iterator[None]:
    """An unknown model is a 404 (as the hosted API answers); engine errors keep their
    type (an EngineError is an API error of its own)."""
    try:
        yield
    except UnknownModel:
        raise NotFound(f"model: {model}") from None


async def count_usage(request: Request, usage: TokenUsage) -> None:
    """Add one interactive call to the workspace's usage; a store hiccup costs the
    count, never the answer."""
    metrics: Metrics | None = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.count_tokens("standard", usage)
    try:
        await state.usage(request).count_call(
            state.workspace(request), state.principal(request).key_id, usage
        )
    except Exception:
        log.warning("could not count usage of %s", request.state.request_id, exc_info=True)


async def with_files(request: Request, params: MessageCreateParams) -> MessageCreateParams:
    """`params` with its file sources read from the caller's workspace (raises EngineError)."""
    return await resolve_files(params, state.file_service(request), state.workspace(request))


async def create_message(request: Request, params: MessageCreateParams) -> Message:
    """One interactive call answered whole, on the shared engines, its usage counted."""
    params = await with_files(request, params)
    with engine_errors(params.model):
        message = await dispatch.create_message(state.router(request), params, Priority.INTERACTIVE)
    message.usage.service_tier = "standard"
    await count_usage(request, TokenUsage.of(params.model, message.usage))
    return message


async def stream_message(
    request: Request, params: MessageCreateParams
) -> AsyncGenerator[StreamEvent]:
    """One interactive call's Messages events; its usage is counted when they end (or the
    client goes). The first event is awaited here, so that an unknown model or an engine
    that fails at once is an HTTP error, not a stream that opens and breaks; a later
    EngineError comes out of the iterator (see `stream_error`)."""
    params = await with_files(request, params)
    events = dispatch.stream_message(state.router(request), params, Priority.INTERACTIVE)
    with engine_errors(params.model):
        first = await anext(events)
    usage = Usage(input_tokens=0, output_tokens=0)
    if isinstance(first, MessageStart):
        first.message.usage.service_tier = "standard"
        usage = msgspec.structs.replace(first.message.usage)

    async def counted() -> AsyncGenerator[StreamEvent]:
        try:
            yield first
            async for event in events:
                if isinstance(event, MessageDelta):
                    merge_delta_usage(usage, event.usage)
                yield event
        finally:
            await events.aclose()
            await count_usage(request, TokenUsage.of(params.model, usage))

    return counted()


def stream_error(request: Request, exc: EngineError) -> ErrorResponse:
    """What an `error` event of an Anthropic-dialect stream carries."""
    rid: str = request.state.request_id
    return ErrorResponse(ErrorObject(exc.error_type, exc.message), rid)


def event_stream(body: AsyncIterator[bytes]) -> StreamingResponse:
    """A server-sent-events response, unbuffered by proxies."""
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )
