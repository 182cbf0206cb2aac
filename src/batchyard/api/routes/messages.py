"""`POST /v1/messages` (JSON or SSE), `POST /v1/messages/count_tokens`, on the shared engines."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from batchyard.api import state
from batchyard.api.interactive import MAX_MESSAGE_BYTES, count_usage, engine_errors
from batchyard.api.requests import read_body
from batchyard.api.responses import json_response
from batchyard.engines import dispatch
from batchyard.engines.router import EngineRouter
from batchyard.engines.slots import Priority
from batchyard.errors import EngineError, InvalidRequest
from batchyard.store.records import TokenUsage
from batchyard.wire.errors import ErrorObject, ErrorResponse, InvalidParams
from batchyard.wire.messages import CountTokensResult, MessageCreateParams, Usage
from batchyard.wire.params import decode_count_params, decode_params
from batchyard.wire.streaming import (
    MessageDelta,
    MessageStart,
    Ping,
    merge_delta_usage,
    sse,
    sse_error,
)


async def _params(
    request: Request, decode: Callable[[bytearray], MessageCreateParams]
) -> MessageCreateParams:
    body = await read_body(request, MAX_MESSAGE_BYTES)
    try:
        return decode(body)
    except InvalidParams as exc:
        raise InvalidRequest(str(exc)) from None


async def create_message(request: Request) -> Response:
    params = await _params(request, decode_params)
    if params.stream:
        return await _stream(request, state.router(request), params)
    with engine_errors(params.model):
        message = await dispatch.create_message(state.router(request), params, Priority.INTERACTIVE)
    message.usage.service_tier = "standard"
    await count_usage(request, TokenUsage.of(params.model, message.usage))
    return json_response(message)


async def _stream(request: Request, router: EngineRouter, params: MessageCreateParams) -> Response:
    events = dispatch.stream_message(router, params, Priority.INTERACTIVE)
    # Wait for the first event so that an unknown model or an engine that fails
    # at once is an HTTP error, not a stream that opens and breaks.
    with engine_errors(params.model):
        first = await anext(events)

    usage = Usage(input_tokens=0, output_tokens=0)
    if isinstance(first, MessageStart):
        first.message.usage.service_tier = "standard"
        usage = msgspec.structs.replace(first.message.usage)

    async def body() -> AsyncIterator[bytes]:
        yield sse(first)
        yield sse(Ping())
        try:
            async for event in events:
                if isinstance(event, MessageDelta):
                    merge_delta_usage(usage, event.usage)
                yield sse(event)
        except EngineError as exc:
            rid: str = request.state.request_id
            yield sse_error(ErrorResponse(ErrorObject(exc.error_type, exc.message), rid))
        finally:
            await events.aclose()
            await count_usage(request, TokenUsage.of(params.model, usage))

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


async def count_tokens(request: Request) -> Response:
    params = await _params(request, decode_count_params)
    with engine_errors(params.model):
        tokens = await dispatch.count_tokens(state.router(request), params)
    return json_response(CountTokensResult(input_tokens=tokens))


routes = [
    Route("/v1/messages", create_message, methods=["POST"]),
    Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
]
