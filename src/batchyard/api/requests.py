"""What every route reads of a request the same way: its body (bounded), its page size."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import anyio
import msgspec
from starlette.requests import Request

from batchyard.api.bodies import bodies_of
from batchyard.errors import InvalidRequest, RequestTooLarge
from batchyard.wire import json_limits
from batchyard.wire.errors import InvalidParams

T = TypeVar("T")
_any: msgspec.json.Decoder[Any] = msgspec.json.Decoder()


def json_object(raw: bytes | bytearray) -> dict[str, Any]:
    """A body that must be a JSON object (the OpenAI dialect's requests, read as plain
    JSON before their translation); InvalidRequest, with `param` where known, if not."""
    try:
        body = json_limits.decode(_any, raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidRequest(f"Request body is not valid JSON: {exc}") from None
    except InvalidParams as exc:
        raise InvalidRequest(str(exc), param=str(exc).split(":")[0]) from None
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object")
    return body


async def read_body(request: Request, limit: int) -> bytearray:
    """The whole body in one buffer, refusing more than `limit` bytes before reading them
    all (a declared Content-Length over it at once). The buffer grows with the bytes
    received, never with the length a client declares (`api/bodies.py`)."""
    declared = request.headers.get("content-length")
    too_large = RequestTooLarge(f"Request exceeds the maximum size of {limit:,} bytes")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in bodies_of(request).stream(request, limit, too_large, keep=True):
        body += chunk
    return body


OFF_LOOP_BYTES = 64 * 1024
"""A body at least this large is decoded on a worker thread: decoding and checking it
(compiling its schemas to grammars) takes long enough to stall every other request."""


async def decoded(decode: Callable[[bytearray], T], body: bytearray) -> T:
    """`decode(body)`, on a worker thread when the body is large."""
    if len(body) < OFF_LOOP_BYTES:
        return decode(body)

    def guarded() -> tuple[T | None, Exception | None]:
        try:
            return decode(body), None
        except Exception as exc:
            # Carried back bare: raised through the thread's future, the error and its
            # traceback (whose frames hold the whole decoded body) would form a cycle
            # that only the cyclic collector frees, megabytes at a time.
            exc.__context__ = exc.__cause__ = None
            return None, exc.with_traceback(None)

    value, error = await anyio.to_thread.run_sync(guarded)
    if error is not None:
        try:
            raise error
        finally:
            del error  # else this frame and the error's traceback hold each other
    return value  # type: ignore[return-value]


MAX_FORM_BYTES = 64 * 1024
"""A dashboard form (a key, a token, an id) is far smaller."""


async def read_form_fields(request: Request) -> dict[str, str]:
    """An `application/x-www-form-urlencoded` form's fields, the body bounded like any other
    (starlette's own form reader buffers an urlencoded body of any size)."""
    body = await read_body(request, MAX_FORM_BYTES)
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def page_limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return 20
    try:
        limit = int(raw)
    except ValueError:
        raise InvalidRequest("limit: must be an integer between 1 and 1000") from None
    if not 1 <= limit <= 1000:
        raise InvalidRequest("limit: must be an integer between 1 and 1000")
    return limit
