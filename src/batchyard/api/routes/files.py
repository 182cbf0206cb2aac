"""The Files API of both dialects on one path: `/v1/files` (multipart upload, list),
`/v1/files/{id}` (get, delete), `/v1/files/{id}/content`. A request carrying
`anthropic-version` (every Anthropic SDK sends it) gets the Anthropic Files API's
shapes and errors, any other the OpenAI one's. One store behind both, scoped by
workspace like everything else."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from batchyard.api import state
from batchyard.api.endpoints import OPENAI_PAGE, Doc, Endpoint, path_param
from batchyard.api.requests import page_limit
from batchyard.api.responses import json_response
from batchyard.api.uploads import MULTIPART_SLACK, read_form
from batchyard.errors import InvalidRequest
from batchyard.services.files import (
    ANTHROPIC_PURPOSE,
    after_of,
    anthropic_filename,
    mime_type_of,
    page_token,
    to_metadata,
    to_wire,
)
from batchyard.store.blobs import CHUNK
from batchyard.wire.files import DeletedFile, FileMetadataList
from batchyard.wire.openai import FILE_PURPOSES, FileDeleted, FileList

EXPIRY_RANGE = (3600, 30 * 86400)
ANTHROPIC_EXPIRY_RANGE = (3600, 90 * 86400)
MAX_IDS = 100


def _anthropic(request: Request) -> bool:
    return bool(request.state.dialect == "anthropic")


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while data := await upload.read(CHUNK):
        yield data


def _text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


def _seconds(raw: str | None, name: str, bounds: tuple[int, int], param: str) -> float | None:
    if raw is None:
        return None
    try:
        seconds = int(raw)
    except ValueError:
        raise InvalidRequest(f"{name}: must be an integer", param=param) from None
    low, high = bounds
    if not low <= seconds <= high:
        raise InvalidRequest(f"{name}: must be between {low} and {high}", param=param)
    return float(seconds)


async def create_file(request: Request) -> Response:
    files, workspace = state.file_service(request), state.workspace(request)
    anthropic = _anthropic(request)
    limit, too_large = await files.upload_limit(workspace, "anthropic" if anthropic else "openai")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + MULTIPART_SLACK:
        raise too_large
    # Parts larger than 1 MB spill to a temporary file: memory stays flat.
    form = await read_form(request, limit, too_large)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidRequest("file: required (a multipart file part)", param="file")
        if anthropic:
            filename, purpose = anthropic_filename(upload.filename), ANTHROPIC_PURPOSE
            name = "expires_in_seconds"
            expires = _seconds(_text(form, name), name, ANTHROPIC_EXPIRY_RANGE, name)
        else:
            filename, asked = upload.filename or "upload", _text(form, "purpose")
            if asked is None or asked not in FILE_PURPOSES:
                raise InvalidRequest(
                    f"purpose: must be one of {', '.join(sorted(FILE_PURPOSES))}",
                    param="purpose",
                )
            purpose = asked
            anchor = _text(form, "expires_after[anchor]")
            if anchor not in (None, "created_at"):
                raise InvalidRequest(
                    "expires_after[anchor]: must be created_at", param="expires_after"
                )
            name = "expires_after[seconds]"
            expires = _seconds(_text(form, name), name, EXPIRY_RANGE, "expires_after")
        record = await files.create(workspace, filename, purpose, _chunks(upload), expires)
    finally:
        await form.close()
    return json_response(to_metadata(record) if anthropic else to_wire(record))


def _ids(request: Request) -> list[str]:
    q = request.query_params
    raw = [*q.getlist("ids[]"), *q.getlist("ids")]
    found = [i.strip() for value in raw for i in value.split(",") if i.strip()]
    if len(set(found)) > MAX_IDS:
        raise InvalidRequest(f"ids: at most {MAX_IDS} ids", param="ids")
    return found


async def _list_anthropic(request: Request) -> Response:
    files, workspace, q = (
        state.file_service(request),
        state.workspace(request),
        request.query_params,
    )
    if wanted := _ids(request):
        records, more = await files.some(workspace, wanted), False
    else:
        token, before = q.get("page"), q.get("before_id")
        after, after_param = (after_of(token), "page") if token else (q.get("after_id"), "after_id")
        records, more = await files.list(
            workspace, page_limit(request), after, False, None, before, after_param=after_param
        )
    data = [to_metadata(r) for r in records]
    forward = more and data and q.get("before_id") is None
    return json_response(
        FileMetadataList(
            data=data,
            has_more=more,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
            next_page=page_token(data[-1].id) if forward else None,
        )
    )


async def list_files(request: Request) -> Response:
    if _anthropic(request):
        return await _list_anthropic(request)
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
    return json_response(to_metadata(record) if _anthropic(request) else to_wire(record))


async def delete_file(request: Request) -> Response:
    record = await state.file_service(request).delete(
        state.workspace(request), request.path_params["file_id"]
    )
    if _anthropic(request):
        return json_response(DeletedFile(id=record.id))
    return json_response(FileDeleted(id=record.id))


async def file_content(request: Request) -> Response:
    record, chunks = await state.file_service(request).download(
        state.workspace(request), request.path_params["file_id"]
    )
    media = mime_type_of(record.filename) if _anthropic(request) else "application/octet-stream"
    return StreamingResponse(chunks, media_type=media)


_FILE = path_param("file_id")
_LIST = (
    *OPENAI_PAGE,
    {"name": "order", "in": "query", "schema": {"enum": ["asc", "desc"]}},
    {"name": "purpose", "in": "query", "schema": {"type": "string"}},
)
endpoints = [
    Endpoint("POST", "/v1/files", create_file, dialect="shared", rate="batch"),
    Endpoint(
        "GET", "/v1/files", list_files, dialect="shared", rate="batch",
        doc=Doc("List files", "FileList", params=_LIST),
    ),
    Endpoint(
        "GET", "/v1/files/{file_id}", retrieve_file, dialect="shared", rate="batch",
        doc=Doc("Retrieve a file", "FileObject", params=_FILE),
    ),
    Endpoint(
        "DELETE", "/v1/files/{file_id}", delete_file, dialect="shared", rate="batch",
        doc=Doc("Delete a file", "FileDeleted", params=_FILE),
    ),
    Endpoint("GET", "/v1/files/{file_id}/content", file_content, dialect="shared", rate="batch"),
]  # fmt: skip
