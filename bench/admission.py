"""Admission from the engine's own load: saturation and queue, fixed capacity vs controlled.

1. A simulated engine (tests/engine_sim.py: fixed running seats, a FIFO waiting
   queue, a service time per request) fed by 1 and 3 workers with unlimited batch
   work: each with a fixed capacity (64, the old default, and a hand split), or
   with its own `AdmissionController` (no --capacity; the maximum 1024), reading
   the engine's load every 0.5 s. The third worker of "3, staggered" starts late.
2. With `--url http://host:8000/v1` (or $BATCHYARD_BENCH_VLLM_URL): the same on a
   real vLLM (or SGLang, llama-server) for `--seconds` each, through
   `OpenAICompatEngine` (one per worker, each probing /metrics itself), short
   requests of `--max-tokens`; the server's running and waiting gauges are sampled
   every 0.25 s. Saturation is running / `--max-running` (default: the most seen).

Printed per run: saturation (mean running / seats), mean and peak waiting queue,
each worker's share of the finished requests, requests/s. Numbers, no asserts.

    PYTHONPATH=.:src .venv/bin/python -m bench.admission [--url URL --model NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from functools import partial
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.engine_sim import SimClient, SimEngine, controlled, fixed, simulate

from batchyard.engines.remote.openai_compat import OpenAICompatEngine
from batchyard.engines.remote.upstream_load import metrics_url_for, parse_load
from batchyard.engines.slots import Priority
from batchyard.errors import EngineError
from batchyard.wire.messages import MessageCreateParams, MessageParam


def row(name: str, sat: float, waiting: float, peak: float, shares: list[float], rps: float) -> str:
    share = "/".join(f"{s:.2f}" for s in shares)
    return f"{name:<34} {sat:>6.3f} {waiting:>8.1f} {peak:>6.0f}  {share:<16} {rps:>8.1f}"


HEADER = f"{'':<34} {'satur.':>6} {'waiting':>8} {'peak':>6}  {'shares':<16} {'req/s':>8}"


def uniform(lo: float, hi: float, rng: random.Random) -> float:
    return rng.uniform(lo, hi)


def simulated() -> None:
    for seats, lo, hi in ((64, 0.5, 1.5), (256, 5.0, 30.0)):
        print(f"\nsimulated engine: {seats} seats, service {lo}-{hi} s (target queue {seats // 8})")
        print(HEADER)
        runs: list[tuple[str, list[SimClient]]] = [
            ("1 worker, fixed 64", fixed(1, 64)),
            *([(f"1 worker, fixed {seats}", fixed(1, seats))] if seats != 64 else []),
            ("1 worker, controlled", controlled(1)),
            ("3 workers, fixed 64 each", fixed(3, 64)),
            (f"3 workers, hand split {seats // 3}", fixed(3, seats // 3)),
            ("3 workers, controlled", controlled(3)),
            ("3 workers, controlled, staggered", controlled(3)),
        ]
        for name, clients in runs:
            if "staggered" in name:
                clients[1].starts_at, clients[2].starts_at = 30.0, 60.0
            r = simulate(
                SimEngine(seats, partial(uniform, lo, hi)),
                clients,
                seconds=400,
                warmup=200,
            )
            print(row(name, r.saturation, r.waiting, r.peak_waiting, r.shares, r.throughput))


def ask(model: str, max_tokens: int, i: int) -> MessageCreateParams:
    text = f"Write one sentence about the number {i}."
    return MessageCreateParams(
        model=model,
        max_tokens=max_tokens,
        temperature=0.0,
        messages=[MessageParam(role="user", content=text)],
    )


async def drive(engine: OpenAICompatEngine, model: str, max_tokens: int, until: float) -> int:
    """Keep `engine.slots` full of requests until `until`; the number finished."""
    done = 0
    counter = 0

    async def one(i: int) -> None:
        nonlocal done
        try:
            await engine.create_message(ask(model, max_tokens, i), priority=Priority.BATCH)
            done += 1
        except EngineError:
            pass
        finally:
            engine.slots.release()

    tasks: set[asyncio.Task[None]] = set()
    while time.monotonic() < until:
        await engine.slots.acquire(Priority.BATCH)
        counter += 1
        task = asyncio.create_task(one(counter))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return done


async def real(
    url: str, model: str, workers: int, mode: str, seconds: float, max_tokens: int
) -> tuple[list[tuple[int, int]], list[int]]:
    engines = [
        OpenAICompatEngine(
            url,
            capacity=64 if mode == "fixed" else 1024,
            admission="fixed" if mode == "fixed" else "metrics",
        )
        for _ in range(workers)
    ]
    samples: list[tuple[int, int]] = []
    until = time.monotonic() + seconds
    async with httpx.AsyncClient() as client:

        async def sample() -> None:
            while time.monotonic() < until:
                response = await client.get(metrics_url_for(url))
                load = parse_load(response.text)
                if load is not None and time.monotonic() > until - seconds / 2:
                    samples.append((load.running, load.waiting))
                await asyncio.sleep(0.25)

        sampler = asyncio.create_task(sample())
        done = await asyncio.gather(*(drive(e, model, max_tokens, until) for e in engines))
        await sampler
    for e in engines:
        await e.aclose()
    return samples, list(done)


def real_runs(
    url: str, model: str, seconds: float, max_tokens: int, max_running: int | None
) -> None:
    results = []
    for workers, mode in ((1, "fixed"), (1, "controlled"), (3, "fixed"), (3, "controlled")):
        samples, done = asyncio.run(real(url, model, workers, mode, seconds, max_tokens))
        results.append(
            (
                f"{workers} worker(s), {'fixed 64 each' if mode == 'fixed' else 'controlled'}",
                samples,
                done,
            )
        )
    seats = max_running or max((r for _, s, _ in results for r, _ in s), default=1)
    print(
        f"\n{url}: {seconds:.0f} s a run, max_tokens {max_tokens}, saturation = running / {seats}"
    )
    print(HEADER)
    for name, samples, done in results:
        n = max(1, len(samples))
        total = sum(done) or 1
        print(row(
            name, sum(r for r, _ in samples) / n / seats, sum(w for _, w in samples) / n,
            max((w for _, w in samples), default=0), [d / total for d in done], sum(done) / seconds,
        ))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=os.environ.get("BATCHYARD_BENCH_VLLM_URL"))
    parser.add_argument("--model", default=os.environ.get("BATCHYARD_BENCH_VLLM_MODEL", "smollm2"))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--max-running", type=int, default=None)
    args = parser.parse_args()
    simulated()
    if args.url:
        real_runs(args.url, args.model, args.seconds, args.max_tokens, args.max_running)
    else:
        print("\n(no --url / $BATCHYARD_BENCH_VLLM_URL: the real-server runs are skipped)")


if __name__ == "__main__":
    main()
