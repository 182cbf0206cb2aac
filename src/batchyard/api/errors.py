"""The one place where exceptions become the wire error shape."""

from __future__ import annotations

import logging

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from batchyard.errors import BatchyardError, ClientGone, openai_code_of, type_of_status
from batchyard.wire.errors import ErrorObject, ErrorResponse, OpenAIError, OpenAIErrorResponse

log = logging.getLogger("batchyard.api")


def error_response(exc: BaseException, request_id: str, dialect: str = "anthropic") -> Response:
    if isinstance(exc, ClientDisconnect):
        exc = ClientGone()  # nobody is left to answer; not a server error
    if isinstance(exc, BatchyardError):
        status, error_type, message = exc.status_code, exc.error_type, exc.message
    elif isinstance(exc, HTTPException):
        status = exc.status_code
        error_type = type_of_status(status)
        message = "Not found" if status == 404 else str(exc.detail)
    else:
        log.error("unhandled error (request-id %s)", request_id, exc_info=exc)
        status, error_type, message = 500, "api_error", "Internal server error"
    if dialect == "openai":
        error = OpenAIError(
            message, error_type, getattr(exc, "param", None), openai_code_of(error_type)
        )
        body = msgspec.json.encode(OpenAIErrorResponse(error))
    else:
        body = msgspec.json.encode(ErrorResponse(ErrorObject(error_type, message), request_id))
    # The request-id header is added by the RequestContext middleware.
    headers: dict[str, str] = dict(getattr(exc, "headers", None) or {})
    if status in (429, 529):
        retry_after = getattr(exc, "retry_after", None)
        headers["retry-after"] = str(max(1, round(retry_after))) if retry_after else "1"
    return Response(body, status_code=status, media_type="application/json", headers=headers)
