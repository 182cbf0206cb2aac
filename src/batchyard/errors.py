"""One exception tree for everything the API can answer with an error, and the one
table of error types.

Each class carries its HTTP status and its wire `error.type`; the API maps them to
the error body in exactly one place (`api/errors.py`). The docstring is the
default message. `ERROR_TYPES` ties each Anthropic `error.type` to its HTTP status
and its OpenAI `error.code`: the API, the OpenAI batch error lines and the remote
engines (an upstream's status as a type) all read it.
"""

from __future__ import annotations

from typing import NamedTuple


class ErrorType(NamedTuple):
    status: int
    openai_code: str | None = None


ERROR_TYPES = {
    "invalid_request_error": ErrorType(400),
    "authentication_error": ErrorType(401, "invalid_api_key"),
    "billing_error": ErrorType(402),
    "permission_error": ErrorType(403, "permission_denied"),
    "not_found_error": ErrorType(404, "not_found"),
    "request_too_large": ErrorType(413, "request_too_large"),
    "rate_limit_error": ErrorType(429, "rate_limit_exceeded"),
    "api_error": ErrorType(500),
    "timeout_error": ErrorType(504),
    "overloaded_error": ErrorType(529),
}
_BY_STATUS = {kind.status: name for name, kind in ERROR_TYPES.items()}


def http_status_of(error_type: str) -> int:
    """The HTTP status of an Anthropic error type (500 for one not in the table)."""
    kind = ERROR_TYPES.get(error_type)
    return kind.status if kind is not None else 500


def openai_code_of(error_type: str) -> str | None:
    kind = ERROR_TYPES.get(error_type)
    return kind.openai_code if kind is not None else None


def type_of_status(status: int) -> str:
    """The error type an HTTP status means (another 4xx: a request error; 5xx: api_error)."""
    return _BY_STATUS.get(status, "api_error" if status >= 500 else "invalid_request_error")


class BatchyardError(Exception):
    """An internal error occurred."""

    status_code: int = 500
    error_type: str = "api_error"

    def __init__(self, message: str | None = None, *, param: str | None = None) -> None:
        self.message = message or (self.__doc__ or "").strip()
        self.param = param
        """The offending parameter, for the OpenAI dialect's error body."""
        super().__init__(self.message)


class InvalidRequest(BatchyardError):
    """The request is not valid."""

    status_code = 400
    error_type = "invalid_request_error"


class AuthenticationFailed(BatchyardError):
    """Missing or invalid API key: send it as `x-api-key` or `Authorization: Bearer`."""

    status_code = 401
    error_type = "authentication_error"


class PermissionDenied(BatchyardError):
    """Your API key does not have permission to use the specified resource."""

    status_code = 403
    error_type = "permission_error"


class NotFound(BatchyardError):
    """The requested resource could not be found."""

    status_code = 404
    error_type = "not_found_error"


class MethodNotAllowed(BatchyardError):
    """Method not allowed for this path."""

    status_code = 405
    error_type = "invalid_request_error"


class RequestTooLarge(BatchyardError):
    """Request exceeds the maximum allowed number of bytes."""

    status_code = 413
    error_type = "request_too_large"


class RequestTimeout(BatchyardError):
    """The request body did not arrive in time; send it again."""

    status_code = 408
    error_type = "invalid_request_error"


class ClientGone(BatchyardError):
    """The client closed the connection before its request was read (nginx's 499):
    nothing is answered and nothing is logged as a server error."""

    status_code = 499
    error_type = "invalid_request_error"


class RateLimited(BatchyardError):
    """Rate limit exceeded."""

    status_code = 429
    error_type = "rate_limit_error"

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.headers = headers or {}


class StoreUnavailable(BatchyardError):
    """The store is temporarily unavailable; try again."""

    status_code = 503
    error_type = "api_error"


class Overloaded(BatchyardError):
    """The server is overloaded."""

    status_code = 529
    error_type = "overloaded_error"


class EngineError(BatchyardError):
    """An engine could not answer.

    `error_type` is the Anthropic error type the caller will see (its status from
    `ERROR_TYPES`); `retryable` says whether trying again may help, `retry_after`
    how long to wait first.
    """

    def __init__(
        self,
        error_type: str,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.status_code = http_status_of(error_type)
        self.retryable = retryable
        self.retry_after = retry_after
