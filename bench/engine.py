"""Embedded engine: raw tokens/s by batch size, and how much of it a batch through batchyard keeps.

1. Batch-size scaling: the engine alone (in this process) with 1, 8 and 32
   sequences at once, 64 new tokens each, greedy.
2. Saturation: the same 1,000 prompts (max_tokens 32, temperature 0, so both
   runs generate the very same tokens) driven straight into the engine, then as
   one batch through a batchyard server on the same engine settings; the ratio
   of their tokens/s is what the API, store and scheduler cost (target >= 95%).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec

from batchyard.engines.local.engine import LocalEngine
from batchyard.wire.params import decode_params
from bench.common import headers, start_server, wait_ended

MODEL = "smollm2-135m-instruct"
TOPICS = ["the sea", "a cat", "bread", "the moon", "trains", "winter", "music", "a garden"]


def params(i: int, max_tokens: int, story: bool = False) -> dict[str, Any]:
    text = (
        f"Write a long story about {TOPICS[i % 8]} number {i}."
        if story
        else f"Write one sentence about {TOPICS[i % 8]} (#{i})."
    )
    return {
        "model": MODEL,
        "max_tokens": max_tokens,
        "temperature": 0,
        "messages": [{"role": "user", "content": text}],
    }


async def raw_run(
    engine: LocalEngine, n: int, max_tokens: int, story: bool = False
) -> tuple[int, float]:
    requests = [decode_params(msgspec.json.encode(params(i, max_tokens, story))) for i in range(n)]
    t0 = time.perf_counter()
    messages = await asyncio.gather(*(engine.create_message(p) for p in requests))
    return sum(m.usage.output_tokens for m in messages), time.perf_counter() - t0


async def scaling(cache: Path) -> None:
    print("embedded engine alone, n sequences of 64 new tokens (long stories), greedy, F16:")
    for n in (1, 8, 32):
        engine = LocalEngine(cache_dir=cache, capacity=n, context_tokens=512)
        await raw_run(engine, n, 8)  # warm-up
        steps = engine.runtime.steps
        tokens, elapsed = await raw_run(engine, n, 64, story=True)
        steps = engine.runtime.steps - steps
        print(
            f"  {n:2d} sequences at once: {tokens / elapsed:6.0f} tokens/s"
            f" ({tokens:,} tokens in {steps} decode steps)"
        )
        await engine.aclose()


async def raw_saturation(cache: Path, n: int, capacity: int) -> tuple[int, float]:
    engine = LocalEngine(cache_dir=cache, capacity=capacity, context_tokens=512)
    try:
        await raw_run(engine, capacity, 8)
        return await raw_run(engine, n, 32)
    finally:
        await engine.aclose()


def served_saturation(n: int, capacity: int) -> tuple[int, float]:
    server, _ = start_server(
        "--engine", "local", "--capacity", str(capacity), "--context-tokens", "512",
        "--poll-interval", "0.1",
    )  # fmt: skip
    try:
        with httpx.Client(base_url=server.base_url, headers=headers(), timeout=600) as c:
            warm = {
                "requests": [
                    {"custom_id": f"w{i}", "params": params(i, 8)} for i in range(capacity)
                ]
            }
            r = c.post("/v1/messages/batches", content=msgspec.json.encode(warm))
            wait_ended(server.base_url, r.json()["id"])
            body = {"requests": [{"custom_id": f"r{i}", "params": params(i, 32)} for i in range(n)]}
            r = c.post("/v1/messages/batches", content=msgspec.json.encode(body))
            created = time.perf_counter()
            ended, batch = wait_ended(server.base_url, r.json()["id"], timeout=1800, poll=0.5)
            assert batch["request_counts"]["succeeded"] == n, batch  # type: ignore[index]
            tokens = 0
            for line in c.get(f"/v1/messages/batches/{r.json()['id']}/results").iter_lines():
                tokens += msgspec.json.decode(line)["result"]["message"]["usage"]["output_tokens"]
        return tokens, ended - created
    finally:
        server.stop()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    capacity = 32
    cache = Path(tempfile.mkdtemp(prefix="batchyard-bench-")) / "models"
    asyncio.run(scaling(cache))
    raw_tokens, raw_time = asyncio.run(raw_saturation(cache, n, capacity))
    served_tokens, served_time = served_saturation(n, capacity)
    raw_rate, served_rate = raw_tokens / raw_time, served_tokens / served_time
    print(f"saturation, {n:,} requests, 32 sequences at once, max_tokens 32, temperature 0:")
    print(
        f"  engine alone       {raw_tokens:7,} tokens in {raw_time:6.1f} s = {raw_rate:5.0f} tokens/s"
    )
    print(
        f"  through batchyard  {served_tokens:7,} tokens in {served_time:6.1f} s = {served_rate:5.0f} tokens/s"
    )
    print(f"  kept               {served_rate / raw_rate:6.1%}  (target >= 95%)")


if __name__ == "__main__":
    main()
