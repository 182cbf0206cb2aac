from __future__ import annotations

import pytest
from starlette.requests import Request
from starlette.types import Message

from batchyard.api.requests import read_body
from batchyard.errors import RequestTooLarge


def request_with(chunks: list[bytes], headers: list[tuple[bytes, bytes]] | None = None) -> Request:
    messages: list[Message] = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]

    async def receive() -> Message:
        return messages.pop(0)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers or []}
    return Request(scope, receive)


@pytest.mark.anyio
async def test_reads_all_chunks() -> None:
    assert await read_body(request_with([b"ab", b"cd", b"e"]), limit=5) == b"abcde"


@pytest.mark.anyio
async def test_chunked_body_over_limit_stops_reading() -> None:
    with pytest.raises(RequestTooLarge):
        await read_body(request_with([b"abc", b"def", b"never read"]), limit=5)


@pytest.mark.anyio
async def test_declared_length_over_limit_is_refused_before_reading() -> None:
    req = request_with([b"x"], headers=[(b"content-length", b"999")])
    with pytest.raises(RequestTooLarge):
        await read_body(req, limit=10)
