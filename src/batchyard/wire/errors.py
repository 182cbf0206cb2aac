"""The Anthropic error body: `{"type":"error","error":{...},"request_id":...}`."""

from __future__ import annotations

from typing import Literal

import msgspec


class ErrorObject(msgspec.Struct):
    type: str
    message: str


class ErrorResponse(msgspec.Struct):
    error: ErrorObject
    request_id: str | None = None
    type: Literal["error"] = "error"


class OpenAIError(msgspec.Struct):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorResponse(msgspec.Struct):
    """The OpenAI dialect's error body: `{"error": {"message", "type", "param", "code"}}`."""

    error: OpenAIError


def format_validation_error(exc: msgspec.ValidationError | msgspec.DecodeError) -> str:
    """Turn msgspec's `Expected … - at `$.a[3].b`` into `a.3.b: Expected …`."""
    text = str(exc)
    message, sep, where = text.rpartition(" - at `")
    if not sep:
        return text
    path = where.rstrip("`").removeprefix("$").lstrip(".")
    path = path.replace("[", ".").replace("]", "")
    return f"{path}: {message}" if path else message


class InvalidParams(ValueError):
    """`params` is a JSON object but not a valid Messages request."""
