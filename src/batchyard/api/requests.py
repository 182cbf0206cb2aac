"""What every route reads of a request the same way: its body (bounded), its page size."""

from __future__ import annotations

from starlette.requests import Request

from batchyard.errors import InvalidRequest, RequestTooLarge


async def read_body(request: Request, limit: int) -> bytearray:
    """The whole body in one buffer, refusing more than `limit` bytes before reading them all.

    With a Content-Length the buffer is allocated once and filled in place, so the
    peak memory is the body plus one chunk (not the chunks plus their join).
    """
    declared = request.headers.get("content-length")
    too_large = RequestTooLarge(f"Request exceeds the maximum size of {limit:,} bytes")
    expected = int(declared) if declared and declared.isdigit() else None
    if expected is not None and expected > limit:
        raise too_large
    body = bytearray(expected or 0)
    size = 0
    async for chunk in request.stream():
        end = size + len(chunk)
        if end > limit:
            raise too_large
        if expected is not None and end <= expected:
            body[size:end] = chunk
        else:
            del body[size:]
            body += chunk
        size = end
    del body[size:]
    return body


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
