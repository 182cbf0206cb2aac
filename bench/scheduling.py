"""Scheduling throughput: create → ended with the zero-latency fake engine.

Baseline, in the same run: the store alone claiming and recording the same
number of requests in-process (no HTTP, no engine, no worker), so the ratio
shows what the worker and engine layers cost on top of the database.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import httpx

from batchyard.store.layout import RequestState
from batchyard.store.records import NewBatch, Outcome
from batchyard.store.sqlite import SQLiteStore
from bench.common import batch_body, headers, start_server, wait_ended

N = 100_000
LINE = b'{"custom_id":"x","result":{"type":"succeeded","message":{"id":"msg_x","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"fake reply 0a1b2c3d to: hello"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":60,"output_tokens":6,"service_tier":"batch"}}}}'


async def store_only(custom_ids: list[str], params: list[bytes]) -> float:
    d = Path(tempfile.mkdtemp(prefix="batchyard-bench-"))
    store = SQLiteStore(d / "db.sqlite")
    await store.open()
    await store.create_batch(NewBatch("msgbatch_b", "ws", 0, 1e12, 1e12), custom_ids, params)
    t0 = time.perf_counter()
    while True:
        claimed = await store.claim_requests("w", time.time(), 60, 512)
        if not claimed:
            break
        await store.record_outcomes(
            "w", [Outcome(c.key, c.attempts, RequestState.SUCCEEDED, LINE) for c in claimed], 0
        )
    elapsed = time.perf_counter() - t0
    await store.close()
    return elapsed


def main() -> None:
    body = batch_body(N)
    server, _ = start_server()
    try:
        with httpx.Client(base_url=server.base_url, headers=headers(), timeout=120) as c:
            c.post("/v1/messages/batches", content=batch_body(100)).raise_for_status()  # warm-up
            t0 = time.perf_counter()
            r = c.post("/v1/messages/batches", content=body)
            r.raise_for_status()
            created = time.perf_counter()
        ended, batch = wait_ended(server.base_url, r.json()["id"])
    finally:
        server.stop()
    counts = batch["request_counts"]
    assert counts["succeeded"] == N, counts  # type: ignore[index]
    run = ended - created
    base = asyncio.run(store_only([f"r{i}" for i in range(N)], [b'{"model":"m"}'] * N))
    print(f"scheduling {N:,} requests (zero-latency fake engine, SQLite, 1 worker in `serve`)")
    print(f"  ingest (POST)            {created - t0:6.2f} s")
    print(
        f"  create -> ended          {run:6.2f} s   {N / run:9,.0f} requests/s  (target >= 20,000)"
    )
    print(f"  baseline store-only loop {base:6.2f} s   {N / base:9,.0f} requests/s")
    print(f"  ratio server/baseline    {run / base:6.2f}x")


if __name__ == "__main__":
    main()
