"""The OpenAI Batch API: `/v1/batches` (create, list), `/v1/batches/{id}`, `.../cancel`."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from batchyard.api import state
from batchyard.api.endpoints import OPENAI_PAGE, Doc, Endpoint, path_param
from batchyard.api.requests import read_body
from batchyard.api.responses import json_response
from batchyard.errors import InvalidRequest
from batchyard.wire import json_limits
from batchyard.wire.errors import InvalidParams, format_validation_error
from batchyard.wire.openai import BatchCreateIn, BatchList

_create_decoder = msgspec.json.Decoder(BatchCreateIn)


async def create_batch(request: Request) -> Response:
    raw = await read_body(request, 1024 * 1024)
    try:
        body = json_limits.decode(_create_decoder, raw)
    except InvalidParams as exc:
        raise InvalidRequest(str(exc)) from None
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        text = format_validation_error(exc)
        raise InvalidRequest(text, param=text.split(":")[0] if ":" in text else None) from None
    batch = await state.openai_batch_service(request).create(
        state.workspace(request),
        body,
        api_key_id=state.principal(request).key_id,
        queued_limit=state.admitted(request).limits.batch_queued_requests,
    )
    return json_response(batch)


async def list_batches(request: Request) -> Response:
    raw = request.query_params.get("limit", "20")
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise InvalidRequest("limit: must be an integer between 1 and 100", param="limit")
    data, more = await state.openai_batch_service(request).page(
        state.workspace(request), int(raw), request.query_params.get("after")
    )
    return json_response(
        BatchList(
            data=data,
            has_more=more,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
        )
    )


async def retrieve_batch(request: Request) -> Response:
    return json_response(
        await state.openai_batch_service(request).retrieve(
            state.workspace(request), request.path_params["batch_id"]
        )
    )


async def cancel_batch(request: Request) -> Response:
    return json_response(
        await state.openai_batch_service(request).cancel(
            state.workspace(request), request.path_params["batch_id"]
        )
    )


_BATCH = path_param("batch_id")
endpoints = [
    Endpoint(
        "POST", "/v1/batches", create_batch, dialect="openai", rate="batch",
        doc=Doc("Create an OpenAI batch", "Batch", body="BatchCreateIn"),
    ),
    Endpoint(
        "GET", "/v1/batches", list_batches, dialect="openai", rate="batch",
        doc=Doc("List OpenAI batches", "BatchList", params=OPENAI_PAGE),
    ),
    Endpoint(
        "GET", "/v1/batches/{batch_id}", retrieve_batch, dialect="openai", rate="batch",
        doc=Doc("Retrieve an OpenAI batch", "Batch", params=_BATCH),
    ),
    Endpoint(
        "POST", "/v1/batches/{batch_id}/cancel", cancel_batch, dialect="openai", rate="batch",
        doc=Doc("Cancel an OpenAI batch", "Batch", params=_BATCH),
    ),
]  # fmt: skip
