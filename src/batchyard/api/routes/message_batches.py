"""Routes of `/v1/messages/batches` (beta and non-beta share them; `?beta=true` is ignored)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from batchyard.api import state
from batchyard.api.endpoints import PAGE, Doc, Endpoint, Handler, path_param
from batchyard.api.requests import page_limit, read_body
from batchyard.api.responses import json_response
from batchyard.wire.batches import MAX_BODY_BYTES, DeletedMessageBatch


async def create_batch(request: Request) -> Response:
    body = await read_body(request, MAX_BODY_BYTES)
    admitted = state.admitted(request)
    batch = await state.batch_service(request).create(
        state.workspace(request),
        body,
        api_key_id=state.principal(request).key_id,
        queued_limit=admitted.limits.batch_queued_requests,
    )
    return json_response(batch)


async def list_batches(request: Request) -> Response:
    q = request.query_params
    page = await state.batch_service(request).list(
        state.workspace(request), page_limit(request), q.get("after_id"), q.get("before_id")
    )
    return json_response(page)


async def retrieve_batch(request: Request) -> Response:
    batch_id = request.path_params["batch_id"]
    return json_response(
        await state.batch_service(request).retrieve(state.workspace(request), batch_id)
    )


async def cancel_batch(request: Request) -> Response:
    batch_id = request.path_params["batch_id"]
    return json_response(
        await state.batch_service(request).cancel(state.workspace(request), batch_id)
    )


async def delete_batch(request: Request) -> Response:
    batch_id = request.path_params["batch_id"]
    deleted = await state.batch_service(request).delete(state.workspace(request), batch_id)
    return json_response(DeletedMessageBatch(id=deleted))


async def batch_results(request: Request) -> Response:
    batch_id = request.path_params["batch_id"]
    partial = request.query_params.get("partial", "").lower() in ("1", "true")
    lines = await state.batch_service(request).results(
        state.workspace(request), batch_id, partial=partial
    )
    return StreamingResponse(lines, media_type="application/x-jsonl")


_BATCH = path_param("batch_id")
_JSONL = {
    "description": "One JSON object per line",
    "content": {"application/x-jsonl": {"schema": {"type": "string"}}},
}


def _batches(method: str, path: str, handler: Handler, doc: Doc) -> Endpoint:
    return Endpoint(method, path, handler, version=True, rate="batch", doc=doc)


endpoints = [
    _batches("POST", "/v1/messages/batches", create_batch,
             Doc("Create a message batch", "MessageBatch", body="BatchCreate")),
    _batches("GET", "/v1/messages/batches", list_batches,
             Doc("List message batches, newest first", "MessageBatchPage", params=PAGE)),
    _batches("GET", "/v1/messages/batches/{batch_id}", retrieve_batch,
             Doc("Retrieve a message batch", "MessageBatch", params=_BATCH)),
    _batches("DELETE", "/v1/messages/batches/{batch_id}", delete_batch,
             Doc("Delete an ended batch", "DeletedMessageBatch", params=_BATCH)),
    _batches("POST", "/v1/messages/batches/{batch_id}/cancel", cancel_batch,
             Doc("Cancel a message batch", "MessageBatch", params=_BATCH)),
    _batches("GET", "/v1/messages/batches/{batch_id}/results", batch_results,
             Doc("Results as JSONL", _JSONL, params=_BATCH)),
]  # fmt: skip
