"""`POST /v1/complete` (JSON, or SSE with `stream: true`): the legacy Text Completions API
of the 0.x SDKs, translated to a Messages request and answered on the same path as
`/v1/messages`."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response

from batchyard.api import interactive
from batchyard.api.endpoints import Doc, Endpoint
from batchyard.api.interactive import MAX_MESSAGE_BYTES
from batchyard.api.requests import decoded, read_body
from batchyard.api.responses import json_response
from batchyard.errors import EngineError, InvalidRequest
from batchyard.translate.completions import CompletionEvents, completion, messages_request
from batchyard.wire.completions import (
    CompletionCreateParams,
    completion_sse,
    decode_completion_params,
)
from batchyard.wire.errors import InvalidParams
from batchyard.wire.messages import MessageCreateParams
from batchyard.wire.streaming import Ping, sse, sse_error


def parse_completion_body(
    raw: bytes | bytearray,
) -> tuple[CompletionCreateParams, MessageCreateParams]:
    """The request and its Messages translation; a problem is an InvalidRequest."""
    try:
        params = decode_completion_params(raw)
        return params, messages_request(params)
    except InvalidParams as exc:
        raise InvalidRequest(str(exc)) from None


async def create_completion(request: Request) -> Response:
    body = await read_body(request, MAX_MESSAGE_BYTES)
    params, messages = await decoded(parse_completion_body, body)
    if params.stream:
        return await _stream(request, params.model, messages)
    message = await interactive.create_message(request, messages)
    return json_response(completion(message, params.model))


async def _stream(request: Request, model: str, params: MessageCreateParams) -> Response:
    events = await interactive.stream_message(request, params)
    completions = CompletionEvents(model)

    async def body() -> AsyncIterator[bytes]:
        yield sse(Ping())
        try:
            async for event in events:
                for piece in completions.feed(event):
                    yield completion_sse(piece)
        except EngineError as exc:
            yield sse_error(interactive.stream_error(request, exc))
        finally:
            await events.aclose()

    return interactive.event_stream(body())


endpoints = [
    Endpoint(
        "POST", "/v1/complete", create_completion, version=True, rate="messages",
        doc=Doc("Create a Text Completion (legacy)", "Completion", body="CompletionCreateParams"),
    )
]  # fmt: skip
