"""The OpenAI Files API: `/v1/files` (multipart upload, list), `/v1/files/{id}` (get,
delete), `/v1/files/{id}/content`. Scoped by workspace like everything else."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from batchyard.api import state
from batchyard.api.responses import json_response
from batchyard.errors import InvalidRequest, RequestTooLarge
from batchyard.services.blobs import CHUNK
from batchyard.services.files import MAX_FILE_BYTES, to_wire
from batchyard.wire.openai import FILE_PURPOSES, FileDeleted, FileList

EXPIRY_RANGE = (3600, 30 * 86400)


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while data := await upload.read(CHUNK):
        yield data


def _expiry(form_value: str | None, anchor: str | None) -> float | None:
    if form_value is None:
        return None
    if anchor not in (None, "created_at"):
        raise InvalidRequest("expires_after[anchor]: must be created_at", param="expires_after")
    try:
        seconds = int(form_value)
    except ValueError:
        raise InvalidRequest(
            "expires_after[seconds]: must be an integer", param="expires_after"
        ) from None
    low, high = EXPIRY_RANGE
    if not low <= seconds <= high:
        raise InvalidRequest(
            f"expires_after[seconds]: must be between {low} and {high}", param="expires_after"
        )
    return float(seconds)


async def create_file(request: Request) -> Response:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_FILE_BYTES + 65536:
        raise RequestTooLarge(f"Files may be at most {MAX_FILE_BYTES:,} bytes", param="file")
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise InvalidRequest("Upload the file as multipart/form-data", param="file")
    # Parts larger than 1 MB spill to a temporary file: memory stays flat.
    async with request.form(max_files=1, max_fields=16) as form:
        upload = form.get("file")
        purpose = form.get("purpose")
        if not isinstance(upload, UploadFile):
            raise InvalidRequest("file: required (a multipart file part)", param="file")
        if not isinstance(purpose, str) or purpose not in FILE_PURPOSES:
            raise InvalidRequest(
                f"purpose: must be one of {', '.join(sorted(FILE_PURPOSES))}", param="purpose"
            )
        seconds = form.get("expires_after[seconds]")
        anchor = form.get("expires_after[anchor]")
        expires = _expiry(
            seconds if isinstance(seconds, str) else None,
            anchor if isinstance(anchor, str) else None,
        )
        if upload.size is not None and upload.size > MAX_FILE_BYTES:
            raise RequestTooLarge(f"Files may be at most {MAX_FILE_BYTES:,} bytes", param="file")
        record = await state.file_service(request).create(
            state.workspace(request),
            upload.filename or "upload",
            purpose,
            _chunks(upload),
            expires,
        )
    return json_response(to_wire(record))


async def list_files(request: Request) -> Response:
    q = request.query_params
    raw_limit = q.get("limit", "10000")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 10000:
        raise InvalidRequest("limit: must be an integer between 1 and 10000", param="limit")
    order = q.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("order: must be asc or desc", param="order")
    records, more = await state.file_service(request).list(
        state.workspace(request), int(raw_limit), q.get("after"), order == "asc", q.get("purpose")
    )
    data = [to_wire(r) for r in records]
    return json_response(
        FileList(
            data=data,
            has_more=more,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
        )
    )


async def retrieve_file(request: Request) -> Response:
    record = await state.file_service(request).get(
        state.workspace(request), request.path_params["file_id"]
    )
    return json_response(to_wire(record))


async def delete_file(request: Request) -> Response:
    record = await state.file_service(request).delete(
        state.workspace(request), request.path_params["file_id"]
    )
    return json_response(FileDeleted(id=record.id))


async def file_content(request: Request) -> Response:
    chunks = await state.file_service(request).content(
        state.workspace(request), request.path_params["file_id"]
    )
    return StreamingResponse(chunks, media_type="application/octet-stream")


routes = [
    Route("/v1/files", create_file, methods=["POST"]),
    Route("/v1/files", list_files, methods=["GET"]),
    Route("/v1/files/{file_id}", retrieve_file, methods=["GET"]),
    Route("/v1/files/{file_id}", delete_file, methods=["DELETE"]),
    Route("/v1/files/{file_id}/content", file_content, methods=["GET"]),
]
