"""The OpenAI Responses API: `POST /v1/responses` (JSON, or SSE with `stream: true`) on
the shared engines, and the stored responses: `GET`/`DELETE /v1/responses/{id}`,
`GET /v1/responses/{id}/input_items`. Translated to a Messages request and back
(`translate/responses_request.py`, `translate/responses_answers.py`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from batchyard.api import interactive, state
from batchyard.api.endpoints import Doc, Endpoint, path_param
from batchyard.api.interactive import MAX_MESSAGE_BYTES
from batchyard.api.requests import decoded, json_object, read_body
from batchyard.errors import EngineError, InvalidRequest
from batchyard.services.responses import Responses, input_items
from batchyard.translate.responses_answers import ResponseShell, ResponseStream, response_object
from batchyard.translate.responses_request import ResponsesRequestError, messages_params


def _service(request: Request) -> Responses:
    return state.services(request).responses


async def create_response(request: Request) -> Response:
    body = await decoded(json_object, await read_body(request, MAX_MESSAGE_BYTES))
    workspace = state.workspace(request)
    responses = _service(request)
    previous = body.get("previous_response_id")
    if previous is not None and not isinstance(previous, str):
        raise InvalidRequest("previous_response_id: must be a string", param="previous_response_id")
    earlier = await responses.earlier(workspace, previous)
    try:
        params = messages_params(body, earlier)
        items = input_items(body["input"])
    except ResponsesRequestError as exc:
        raise InvalidRequest(str(exc), param=exc.param) from None
    shell = ResponseShell(body, body["model"])
    keep = body.get("store", True) is not False
    if body.get("stream"):
        return await _stream(request, params, shell, items if keep else None)
    message = await interactive.create_message(request, params)
    answer = response_object(shell, message)
    if keep:
        await responses.keep(workspace, answer, items)
    return JSONResponse(answer)


def _sse(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: ".encode() + json.dumps(event).encode() + b"\n\n"


async def _stream(
    request: Request, params: Any, shell: ResponseShell, items: list[dict[str, Any]] | None
) -> Response:
    events = await interactive.stream_message(request, params)
    translator = ResponseStream(shell)
    workspace, responses = state.workspace(request), _service(request)

    async def body() -> AsyncIterator[bytes]:
        for event in translator.start():
            yield _sse(event)
        try:
            async for message_event in events:
                for event in translator.feed(message_event):
                    yield _sse(event)
        except EngineError as exc:
            for event in translator.failed(exc.message, exc.error_type):
                yield _sse(event)
            return
        finally:
            await events.aclose()
        for event in translator.end():
            yield _sse(event)
        if items is not None and translator.final is not None:
            await responses.keep(workspace, translator.final, items)

    return interactive.event_stream(body())


async def retrieve_response(request: Request) -> Response:
    body = await _service(request).get(state.workspace(request), request.path_params["id"])
    return Response(body, media_type="application/json")


async def delete_response(request: Request) -> Response:
    deleted = await _service(request).delete(state.workspace(request), request.path_params["id"])
    return JSONResponse(deleted)


async def list_input_items(request: Request) -> Response:
    query = request.query_params
    raw = query.get("limit", "20")
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise InvalidRequest("limit: must be an integer between 1 and 100", param="limit")
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("order: must be 'asc' or 'desc'", param="order")
    page = await _service(request).input_items_page(
        state.workspace(request), request.path_params["id"],
        after=query.get("after"), limit=int(raw), order=order,
    )  # fmt: skip
    return JSONResponse(page)


RESPONSE = {
    "description": "A response",
    "content": {"application/json": {"schema": {"type": "object"}}},
}
_ID = path_param("id")

endpoints = [
    Endpoint("POST", "/v1/responses", create_response, dialect="openai", rate="messages",
             doc=Doc("Create a response (the OpenAI Responses API)", RESPONSE)),
    Endpoint("GET", "/v1/responses/{id}", retrieve_response, dialect="openai",
             doc=Doc("Retrieve a stored response", RESPONSE, params=_ID)),
    Endpoint("DELETE", "/v1/responses/{id}", delete_response, dialect="openai",
             doc=Doc("Delete a stored response", RESPONSE, params=_ID)),
    Endpoint("GET", "/v1/responses/{id}/input_items", list_input_items, dialect="openai",
             doc=Doc("List a stored response's input items", RESPONSE, params=_ID)),
]  # fmt: skip
