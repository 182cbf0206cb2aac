"""One exception tree for everything the API can answer with an error.

Each class carries its HTTP status and its wire `error.type`; the API maps them to
the error body in exactly one place (`api/errors.py`). The docstring is the
default message.
"""

from __future__ import annotations


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
