"""`POST /v1/chat/completions` (JSON, or SSE with `stream: true`) on the shared engines,
for the `openai` SDK: translated to a Messages request and back."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from batchyard.api import interactive
from batchyard.api.endpoints import Doc, Endpoint
from batchyard.api.interactive import MAX_MESSAGE_BYTES
from batchyard.api.requests import decoded, json_object, read_body
from batchyard.api.responses import json_response
from batchyard.errors import EngineError, InvalidRequest
from batchyard.translate.chat_answers import ChunkTranslator, chat_completion
from batchyard.translate.chat_to_messages import ChatRequestError, messages_request
from batchyard.wire.messages import MessageCreateParams


def parse_chat_body(raw: bytes | bytearray) -> tuple[dict[str, Any], MessageCreateParams]:
    """The JSON body and its Messages translation; problems are InvalidRequest with `param`."""
    body = json_object(raw)
    try:
        return body, messages_request(body)
    except ChatRequestError as exc:
        raise InvalidRequest(str(exc), param=exc.param) from None


async def chat_completions(request: Request) -> Response:
    raw = await read_body(request, MAX_MESSAGE_BYTES)
    body, params = await decoded(parse_chat_body, raw)
    model: str = body["model"]
    if body.get("stream"):
        options = body.get("stream_options") or {}
        return await _stream(request, params, model, bool(options.get("include_usage")))
    message = await interactive.create_message(request, params)
    return json_response(chat_completion(message, model))


def _sse(obj: Any) -> bytes:
    return b"data: " + msgspec.json.encode(obj) + b"\n\n"


async def _stream(
    request: Request, params: MessageCreateParams, model: str, include_usage: bool
) -> Response:
    events = await interactive.stream_message(request, params)
    translator = ChunkTranslator(model, include_usage)

    async def body() -> AsyncIterator[bytes]:
        try:
            async for event in events:
                for chunk in translator.feed(event):
                    yield _sse(chunk)
        except EngineError as exc:
            error = {"error": {"message": exc.message, "type": exc.error_type}}
            yield b"data: " + json.dumps(error).encode() + b"\n\n"
        finally:
            await events.aclose()
        yield b"data: [DONE]\n\n"

    return interactive.event_stream(body())


CHAT_OK = {
    "description": "A chat.completion",
    "content": {"application/json": {"schema": {"type": "object"}}},
}

endpoints = [
    Endpoint(
        "POST", "/v1/chat/completions", chat_completions, dialect="openai", rate="messages",
        doc=Doc("Create a chat completion (the OpenAI dialect)", CHAT_OK, body="ChatRequest"),
    )
]  # fmt: skip
