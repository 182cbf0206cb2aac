"""At GPU speed: batchyard against an OpenAI-compatible upstream that answers at once.

A fleet with spare capacity answers short classification prompts in milliseconds; there
batchyard's own cost per request decides the rate. The upstream here (a raw asyncio
server in a process of its own) answers every chat completion at once with the same
small reply, so what is measured is the client side:

- bare: an `httpx.AsyncClient` at concurrency 64 in this process (the baseline a
  hand-written client reaches), and the same with aiohttp;
- batchyard: `serve --engine openai --admission fixed --capacity 64` runs an N-request
  batch (create to ended), its process's CPU time divided by N;
- workers (`--workers 1,2,4`): one API process (`--no-worker`) and W
  `batchyard worker` processes on PostgreSQL against the same upstream; the CPU of them
  all, divided by N (PostgreSQL's own CPU not counted);
- `--ttft`: 200 streamed calls one at a time, straight to the upstream and through
  batchyard, the upstream sending its first token 50 ms before the rest: time to it.

Ratios are to the bare httpx client in the same run (the machine drifts from day to day).

    python -m bench.instant_upstream [N] [--workers 1,2,4] [--skip-serve] [--ttft]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import httpx
import msgspec
import psutil
from tests.serverproc import Proc, Server, WorkerProc, free_port

from bench.common import PROMPT, ROOT, batch_body, headers, wait_ended

REPLY = msgspec.json.encode(
    {
        "id": "chatcmpl-instant",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "positive"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 60, "completion_tokens": 1, "total_tokens": 61},
    }
)
OK = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
    + str(len(REPLY)).encode()
    + b"\r\n\r\n"
    + REPLY
)
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)


def _chunk(events: list[dict[str, object]]) -> bytes:
    data = b"".join(b"data: " + msgspec.json.encode(e) + b"\n\n" for e in events)
    return b"%x\r\n%s\r\n" % (len(data), data)


FIRST_TOKEN = _chunk(
    [{"id": "c", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "pos"}}]}]
)
REST = (
    _chunk(
        [
            {"id": "c", "choices": [{"index": 0, "delta": {"content": "itive"}}]},
            {"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {"id": "c", "choices": [], "usage": {"prompt_tokens": 60, "completion_tokens": 2}},
        ]
    )
    + b"%x\r\ndata: [DONE]\n\n\r\n" % len(b"data: [DONE]\n\n")
    + b"0\r\n\r\n"
)
STREAM_GAP = 0.05
"""Seconds between a streamed answer's first token and the rest."""
CONCURRENCY = 64


class _Answer(asyncio.Protocol):
    """HTTP/1.1 keep-alive: each request (headers, then content-length bytes) answered at
    once; chat completions with REPLY, anything else with a 404."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) != -1:
            head = self.buffer[:end].lower()
            length = 0
            at = head.find(b"content-length:")
            if at != -1:
                line_end = head.find(b"\r\n", at)
                length = int(head[at + 15 : line_end if line_end != -1 else None].strip())
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            chat = head.startswith(b"post ") and b"/chat/completions" in head[: head.find(b"\r\n")]
            if chat and b'"stream":true' in body:
                self.transport.write(STREAM_HEAD + FIRST_TOKEN)
                asyncio.get_running_loop().call_later(STREAM_GAP, self.transport.write, REST)
            else:
                self.transport.write(OK if chat else NOT_FOUND)


def serve_upstream(port: int) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_Answer, "127.0.0.1", port)
        await server.serve_forever()

    asyncio.run(main())


class Upstream:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "bench.instant_upstream", "--serve", str(self.port)],
            cwd=ROOT,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=1)
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        self.popen.terminate()
        self.popen.wait(10)


def chat_body(i: int) -> bytes:
    return msgspec.json.encode(
        {
            "model": "m",
            "max_tokens": 1,
            "messages": [{"role": "user", "content": f"{PROMPT}{i}."}],
        }
    )


async def _bare_httpx(url: str, n: int) -> None:
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        todo = iter(range(n))

        async def one() -> None:
            for i in todo:
                r = await client.post(
                    "/chat/completions",
                    content=chat_body(i),
                    headers={"content-type": "application/json"},
                )
                r.raise_for_status()
                msgspec.json.decode(r.content)

        await asyncio.gather(*(one() for _ in range(CONCURRENCY)))


async def _bare_aiohttp(url: str, n: int) -> None:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        todo = iter(range(n))

        async def one() -> None:
            for i in todo:
                async with session.post(
                    f"{url}/chat/completions",
                    data=chat_body(i),
                    headers={"content-type": "application/json"},
                ) as r:
                    r.raise_for_status()
                    msgspec.json.decode(await r.read())

        await asyncio.gather(*(one() for _ in range(CONCURRENCY)))


def bare(kind: str, url: str, n: int) -> tuple[float, float]:
    """(requests/s, CPU-µs a request) of a bare client in this process."""
    cpu, wall = time.process_time(), time.perf_counter()
    if kind == "httpx":
        asyncio.run(_bare_httpx(url, n))
    else:
        asyncio.run(_bare_aiohttp(url, n))
    return n / (time.perf_counter() - wall), (time.process_time() - cpu) / n * 1e6


def first_token(client: httpx.Client, path: str, body: bytes, mark: bytes) -> float:
    """Seconds from sending a streamed request to the first line holding `mark`."""
    started = time.perf_counter()
    with client.stream("POST", path, content=body) as response:
        response.raise_for_status()
        lines = response.iter_lines()
        for line in lines:
            if mark.decode() in line:
                seen = time.perf_counter() - started
                for _ in lines:  # the rest read, the connection kept
                    pass
                return seen
    raise AssertionError("no token came")


def ttft(url: str, calls: int = 200) -> tuple[list[float], list[float]]:
    """Times to first token of `calls` streamed calls, one at a time: straight to the
    upstream, and through a batchyard server in front of it (no batch running)."""
    folder = Path(tempfile.mkdtemp(prefix="batchyard-bench-"))
    server = Server(
        str(folder / "ttft.sqlite"), folder / "ttft.log", [*ENGINE, "--upstream-url", url]
    )
    chat = msgspec.json.encode(
        {
            "model": "m",
            "max_tokens": 4,
            "stream": True,
            "messages": [{"role": "user", "content": PROMPT}],
        }
    )
    try:
        with (
            httpx.Client(base_url=url, timeout=30) as direct,
            httpx.Client(base_url=server.base_url, headers=headers(), timeout=30) as ours,
        ):
            bare = [
                first_token(direct, "/chat/completions", chat, b'"content"') for _ in range(calls)
            ]
            through = [
                first_token(ours, "/v1/messages", chat, b"content_block_delta")
                for _ in range(calls)
            ]
    finally:
        server.stop()
    return sorted(bare), sorted(through)


def cpu_seconds(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        t = psutil.Process(pid).cpu_times()
        total += t.user + t.system
    return total


ENGINE = ("--engine", "openai", "--model", "m", "--admission", "fixed", "--capacity", "64")


def through_batchyard(
    url: str, n: int, database: str, folder: Path, workers: int = 0
) -> tuple[float, float]:
    """(requests/s, CPU-µs a request) of batchyard's processes running an n-request batch:
    one `serve` (workers=0), or an API process and `workers` worker processes."""
    engine = [*ENGINE, "--upstream-url", url, "--poll-interval", "0.05"]
    procs: list[Proc] = []
    if workers:
        api = Server(database, folder / "api.log", ["--no-worker"])
        procs = [WorkerProc(database, folder / f"w{i}.log", engine) for i in range(workers)]
        time.sleep(1.5)  # the workers are up and polling
    else:
        api = Server(database, folder / "serve.log", engine)
    pids = [api.popen.pid, *(p.popen.pid for p in procs)]
    try:
        body = batch_body(n, model="m", max_tokens=1)
        with httpx.Client(base_url=api.base_url, headers=headers(), timeout=300) as c:
            cpu = cpu_seconds(pids)
            started = time.perf_counter()
            r = c.post("/v1/messages/batches", content=body)
            r.raise_for_status()
        ended, batch = wait_ended(api.base_url, r.json()["id"], timeout=3600, poll=0.05)
        used = cpu_seconds(pids) - cpu
        counts = batch["request_counts"]
        assert counts["succeeded"] == n, counts  # type: ignore[index]
        return n / (ended - started), used / n * 1e6
    finally:
        for p in procs:
            p.stop()
        api.stop()


def fresh_pg() -> str:
    from bench.scale import bench_cluster
    from bench.scale import fresh_pg as fresh

    return fresh(bench_cluster())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", nargs="?", type=int, default=20_000)
    parser.add_argument("--workers", default="", help="e.g. 1,2,4 (on PostgreSQL)")
    parser.add_argument("--skip-serve", action="store_true", help="only the worker runs")
    parser.add_argument("--ttft", action="store_true", help="streamed calls' first token too")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_upstream(args.serve)
        return
    n = args.n
    upstream = Upstream()
    folder = Path(tempfile.mkdtemp(prefix="batchyard-bench-"))
    rows: list[tuple[str, float, float]] = []
    firsts: tuple[list[float], list[float]] | None = None
    try:
        if args.ttft:
            firsts = ttft(upstream.url)
        base_rate, base_cpu = bare("httpx", upstream.url, n)
        rows.append(("bare httpx client, concurrency 64", base_rate, base_cpu))
        rows.append(("bare aiohttp client, concurrency 64", *bare("aiohttp", upstream.url, n)))
        if not args.skip_serve:
            sqlite = str(folder / "serve.sqlite")
            rows.append(
                ("batchyard serve (SQLite)", *through_batchyard(upstream.url, n, sqlite, folder))
            )
        for w in [int(x) for x in args.workers.split(",") if x]:
            rate, cpu = through_batchyard(upstream.url, n, fresh_pg(), folder, workers=w)
            rows.append((f"batchyard, {w} worker process(es) (PostgreSQL)", rate, cpu))
    finally:
        upstream.stop()
    print(f"instant upstream, {n:,} requests, {os.cpu_count()} cores:")
    print(f"  {'':<48} {'requests/s':>10} {'x bare':>7} {'CPU-µs/req':>11}")
    for name, rate, cpu in rows:
        print(f"  {name:<48} {rate:>10,.0f} {rate / base_rate:>7.2f} {cpu:>11,.0f}")
    if firsts is not None:
        print(
            f"streamed calls, one at a time, first token {STREAM_GAP * 1000:.0f} ms before the rest:"
        )
        for name, times in zip(
            ("straight to the upstream", "through batchyard"), firsts, strict=True
        ):
            p50, p99 = times[len(times) // 2], times[int(len(times) * 0.99)]
            print(f"  {name:<48} TTFT p50 {p50 * 1000:6.2f} ms   p99 {p99 * 1000:6.2f} ms")


if __name__ == "__main__":
    main()
