"""`POST /v1/messages` (JSON or SSE), `POST /v1/messages/count_tokens`, on the shared engines."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from starlette.requests import Request
from starlette.responses import Response

from batchyard.api import interactive, state
from batchyard.api.endpoints import Doc, Endpoint
from batchyard.api.interactive import MAX_MESSAGE_BYTES
from batchyard.api.requests import decoded, read_body
from batchyard.api.responses import json_response
from batchyard.errors import EngineError, InvalidRequest
from batchyard.wire.errors import InvalidParams
from batchyard.wire.messages import CountTokensResult, MessageCreateParams
from batchyard.wire.params import decode_count_params, decode_params
from batchyard.wire.streaming import MessageStart, Ping, sse, sse_error


async def _params(
    request: Request, decode: Callable[[bytearray], MessageCreateParams]
) -> MessageCreateParams:
    body = await read_body(request, MAX_MESSAGE_BYTES)
    try:
        return await decoded(decode, body)
    except InvalidParams as exc:
        raise InvalidRequest(str(exc)) from None


async def create_message(request: Request) -> Response:
    params = await _params(request, decode_params)
    if params.stream:
        return await _stream(request, params)
    return json_response(await interactive.create_message(request, params))


async def _stream(request: Request, params: MessageCreateParams) -> Response:
    events = await interactive.stream_message(request, params)

    async def body() -> AsyncIterator[bytes]:
        try:
            async for event in events:
                yield sse(event)
                if isinstance(event, MessageStart):
                    yield sse(Ping())
        except EngineError as exc:
            yield sse_error(interactive.stream_error(request, exc))
        finally:
            await events.aclose()

    return interactive.event_stream(body())


async def count_tokens(request: Request) -> Response:
    params = await _params(request, decode_count_params)
    tokens = await state.inference(request).count_tokens(params, state.workspace(request))
    return json_response(CountTokensResult(input_tokens=tokens))


endpoints = [
    Endpoint(
        "POST", "/v1/messages", create_message, version=True, rate="messages",
        doc=Doc("Create a message", "Message", body="MessageCreateParams"),
    ),
    Endpoint(
        "POST", "/v1/messages/count_tokens", count_tokens, version=True, rate="messages",
        doc=Doc("Count input tokens", "CountTokensResult", body="CountTokensParams"),
    ),
]  # fmt: skip
