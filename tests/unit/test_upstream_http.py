"""The remote engines' HTTP client (`engines/remote/http.py`) against raw servers on
loopback: keep-alive connections no more than the calls at once, answers of any status,
streamed lines of any length across reads, failures as retryable EngineErrors, and the
environment's proxy read once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from batchyard.engines.remote.http import Upstream, proxy_for
from batchyard.errors import EngineError
from tests.serverproc import free_port

Answer = Callable[[bytes], list[bytes]]
"""A request's bytes → the pieces of its answer, written one by one."""


def whole(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class Raw:
    """An HTTP/1.1 server that answers each request with `answer`'s pieces (a pause
    between them), counting the connections it accepted."""

    def __init__(self, answer: Answer, port: int | None = None) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                for piece in self.answer(request):
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0.01)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Raw]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        try:
            yield self
        finally:
            server.close()


@pytest.mark.anyio
async def test_calls_share_keep_alive_connections_no_more_than_ran_at_once() -> None:
    raw = Raw(lambda request: [whole("200 OK", b'{"ok": true}')])
    async with raw.running():
        upstream = Upstream(raw.url + "/v1", "gpu")
        seats = asyncio.Semaphore(8)

        async def one(i: int) -> bytes:
            async with seats:
                reply = await upstream.post("/chat/completions", b'{"i": %d}' % i)
                assert reply.status_code == 200
                return reply.content

        answers = await asyncio.gather(*(one(i) for i in range(200)))
        await upstream.aclose()
    assert answers == [b'{"ok": true}'] * 200
    assert len(raw.requests) == 200
    assert raw.requests[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"content-type: application/json" in raw.requests[0].lower()
    assert 1 <= raw.connections <= 8


@pytest.mark.anyio
async def test_an_error_status_comes_back_whole_with_its_headers() -> None:
    def refuse(request: bytes) -> list[bytes]:
        body = b'{"error": {"message": "slow down"}}'
        head = (
            b"HTTP/1.1 429 Too Many Requests\r\nretry-after-ms: 150\r\ncontent-length: %d\r\n\r\n"
        )
        return [head % len(body) + body]

    async with Raw(refuse).running() as raw:
        upstream = Upstream(raw.url, "gpu", headers={"authorization": "Bearer k"})
        reply = await upstream.post("/x", b"{}")
        await upstream.aclose()
    assert (reply.status_code, reply.headers["Retry-After-Ms"]) == (429, "150")
    assert reply.content == b'{"error": {"message": "slow down"}}'
    assert b"authorization: bearer k" in raw.requests[0].lower()


@pytest.mark.anyio
async def test_a_streams_lines_come_whole_however_the_reads_cut_them() -> None:
    long = b"data: " + b"x" * 200_000  # past aiohttp's own line limit
    body = b"data: one\r\n\r\n" + long + b"\n\ndata: [DONE]"

    def chunked(request: bytes) -> list[bytes]:
        head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n"
        pieces = [body[i : i + 7_001] for i in range(0, len(body), 7_001)]
        return [head % len(body), *pieces]

    async with Raw(chunked).running() as raw:
        upstream = Upstream(raw.url, "gpu")
        async with upstream.stream("/s", b"{}") as stream:
            assert stream.reply is None
            lines = [line async for line in stream.lines()]
        await upstream.aclose()
    assert lines == [b"data: one", b"", long, b"", b"data: [DONE]"]


@pytest.mark.anyio
async def test_a_refused_stream_is_read_whole_as_a_reply() -> None:
    answer = whole("400 Bad Request", b'{"message": "Got priority 10"}')
    async with Raw(lambda request: [answer]).running() as raw:
        upstream = Upstream(raw.url, "gpu")
        async with upstream.stream("/s", b"{}") as stream:
            assert stream.reply is not None
            assert (stream.reply.status_code, stream.reply.content) == (
                400,
                b'{"message": "Got priority 10"}',
            )
        await upstream.aclose()


@pytest.mark.anyio
async def test_no_server_and_no_answer_are_retryable_errors_naming_the_upstream() -> None:
    upstream = Upstream(f"http://127.0.0.1:{free_port()}", "gpu-0")
    with pytest.raises(EngineError) as refused:
        await upstream.post("/x", b"{}")
    assert (refused.value.error_type, refused.value.retryable) == ("api_error", True)
    assert "cannot reach gpu-0" in refused.value.message
    await upstream.aclose()

    async with Raw(
        lambda request: [b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{"]
    ).running() as raw:
        slow = Upstream(raw.url, "gpu-1", timeout=0.3)
        with pytest.raises(EngineError) as late:
            await slow.post("/x", b"{}")
        await slow.aclose()
    assert (late.value.error_type, late.value.retryable) == ("timeout_error", True)
    assert "gpu-1 did not answer in time" in late.value.message


def test_the_environments_proxy_is_read_once_and_no_proxy_honoured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("http_proxy", "https_proxy", "no_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    assert proxy_for("http://gpu-0:8000/v1") is None
    monkeypatch.setenv("HTTP_PROXY", "http://proxy:3128")
    assert proxy_for("http://gpu-0:8000/v1") == "http://proxy:3128"
    assert proxy_for("https://api.example/v1") is None
    monkeypatch.setenv("NO_PROXY", "gpu-0,.internal")
    assert proxy_for("http://gpu-0:8000/v1") is None
    assert proxy_for("http://vllm.internal/v1") is None
    assert proxy_for("http://other:8000/v1") == "http://proxy:3128"


def test_one_client_serves_one_event_loop_after_another() -> None:
    port = free_port()
    upstream = Upstream(f"http://127.0.0.1:{port}", "gpu")

    async def call() -> int:
        async with Raw(lambda request: [whole("200 OK", b"{}")], port).running():
            return (await upstream.post("/x", b"{}")).status_code

    assert asyncio.run(call()) == 200
    assert asyncio.run(call()) == 200  # a new loop: a new session, not the first one's
    asyncio.run(upstream.aclose())
