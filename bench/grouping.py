"""Prefix-grouped claims vs round-robin: four batches with four different system prompts.

Four batches are created at once, each of N requests sharing its own ~500-token
`system` prompt (the labelling prompt of bench/prefix.py under four different task
headers, so they differ from the first token), `max_tokens` 8, temperature 0. A
real worker (in-memory store) runs them to the end on one engine, twice in one
process: with grouped claims (the default) and with `prefix_run = 0` (every claim
shared out across the four batches, round-robin, as before).

Engines:
- `local` (default): the embedded engine, once with its default prefix cache and
  once with a cache that holds about one prompt (`--prefix-cache-mb`, default 16),
  where interleaving thrashes it.
- `--vllm URL`: an OpenAI-compatible vLLM at URL (its `/v1`); the hit rate is read
  from its `/metrics` (`vllm:prefix_cache_hits_total / queries_total`).

Printed: seconds, output tokens/s, and the share of prompt tokens served from the
cache (from the results' usage; from vLLM's counters for vLLM).

    PYTHONPATH=. .venv/bin/python -m bench.grouping [N] [--vllm URL] [--prefix-cache-mb MB]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec

from batchyard.clock import SystemClock
from batchyard.config import WorkerSettings
from batchyard.engines.base import Engine
from batchyard.engines.config import ModelConfig
from batchyard.engines.router import EngineRouter, Route
from batchyard.services.inference import Inference
from batchyard.store import MEMORY_URL, open_store
from batchyard.store.records import NewBatch
from batchyard.wire.prefix_key import batch_prefix
from batchyard.worker.worker import Worker
from bench.prefix import SYSTEM, item

TASKS = ["returns desk", "payments team", "web shop", "call centre"]
HOUR = 3600.0


def system_of(task: str) -> str:
    return f"Team: {task}. " + SYSTEM


def request(model: str, task: str, k: int) -> bytes:
    return msgspec.json.encode(
        {
            "model": model,
            "max_tokens": 8,
            "temperature": 0,
            "system": system_of(task),
            "messages": [{"role": "user", "content": item(k)}],
        }
    )


async def run_once(
    engine: Engine, model: str, n: int, prefix_run: int | None, salt: str = ""
) -> dict[str, Any]:
    """`salt` starts every task name: prompts no earlier run left in a cache."""
    store = open_store(MEMORY_URL)
    await store.open()
    clock = SystemClock()
    for b, task in enumerate(TASKS):
        params = [request(model, salt + task, k) for k in range(n)]
        now = clock.now()
        new = NewBatch(
            f"msgbatch_{b}", "ws", now, now + HOUR, now + 2 * HOUR, prefix=batch_prefix(params)
        )
        await store.create_batch(new, [f"r{k}" for k in range(n)], params)
    router = EngineRouter([Route(ModelConfig(id=model), engine)])
    worker = Worker(
        store, Inference(router, None), WorkerSettings(prefix_run=prefix_run), clock=clock
    )
    started = time.perf_counter()
    await worker.run_until_idle()
    seconds = time.perf_counter() - started
    read = prompt = output = ok = 0
    for b in range(len(TASKS)):
        batch = await store.get_batch("ws", f"msgbatch_{b}")
        assert batch is not None
        async for chunk in store.result_lines(batch):
            for line in chunk.splitlines():
                result = msgspec.json.decode(line)["result"]
                if result["type"] != "succeeded":
                    continue
                usage = result["message"]["usage"]
                ok += 1
                read += usage.get("cache_read_input_tokens") or 0
                prompt += usage["input_tokens"] + (usage.get("cache_read_input_tokens") or 0)
                prompt += usage.get("cache_creation_input_tokens") or 0
                output += usage["output_tokens"]
    await store.close()
    return {"s": seconds, "ok": ok, "read": read, "prompt": prompt, "out": output}


def vllm_counters(url: str) -> tuple[float, float]:
    text = httpx.get(url.removesuffix("/").removesuffix("/v1") + "/metrics").text
    hits = queries = 0.0
    for line in text.splitlines():
        if line.startswith("vllm:prefix_cache_hits_total"):
            hits += float(line.rsplit(" ", 1)[1])
        elif line.startswith("vllm:prefix_cache_queries_total"):
            queries += float(line.rsplit(" ", 1)[1])
    return hits, queries


def report(label: str, r: dict[str, Any]) -> None:
    share = r["read"] / r["prompt"] if r["prompt"] else 0.0
    print(
        f"{label:34s} {r['s']:7.1f} s  {r['out'] / r['s']:6.1f} out tok/s"
        f"  cache served {share:6.1%} of prompt tokens  ({r['ok']} ok)"
    )


async def local_runs(n: int, cache_mb: int) -> None:
    from batchyard.engines.local.engine import LocalEngine

    models = Path(tempfile.mkdtemp(prefix="bench-grouping-"))
    model = "smollm2-135m-instruct"
    for mb in (256, cache_mb):
        engine = LocalEngine(cache_dir=models, capacity=32, prefix_cache_mb=mb)
        await run_once(engine, model, 8, None)  # warm-up (first touch of the KV pages)
        results = {}
        for label, run in (("grouped", None), ("round-robin", 0), ("grouped again", None)):
            assert engine.runtime.cache is not None
            engine.runtime.cache.clear()
            results[label] = await run_once(engine, model, n, run)
            report(f"local, cache {mb} MB, {label}", results[label])
        ratio = results["round-robin"]["s"] / min(
            results["grouped"]["s"], results["grouped again"]["s"]
        )
        print(f"  grouped is {ratio:.2f}x the speed of round-robin (cache {mb} MB)")
        await engine.aclose()


async def vllm_runs(n: int, url: str, model: str) -> None:
    from batchyard.engines.remote.openai_compat import OpenAICompatEngine

    for label, run in (("grouped", None), ("round-robin", 0), ("grouped again", None)):
        engine = OpenAICompatEngine(url, capacity=32, name="vllm")
        hits0, queries0 = vllm_counters(url)
        r = await run_once(engine, model, n, run, salt=f"{label} ")  # vLLM's cache persists
        hits1, queries1 = vllm_counters(url)
        await engine.aclose()
        r["read"], r["prompt"] = hits1 - hits0, queries1 - queries0
        report(f"vLLM, {label}", r)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", nargs="?", type=int, default=24, help="requests per batch")
    parser.add_argument("--vllm", help="an OpenAI-compatible vLLM's /v1 URL")
    parser.add_argument("--model", default="smollm2", help="the model name vLLM serves")
    parser.add_argument("--prefix-cache-mb", type=int, default=16)
    args = parser.parse_args()
    print(f"4 batches x {args.n} requests, ~500-token system prompt each, max_tokens 8")
    if args.vllm:
        asyncio.run(vllm_runs(args.n, args.vllm, args.model))
    else:
        asyncio.run(local_runs(args.n, args.prefix_cache_mb))


if __name__ == "__main__":
    main()
