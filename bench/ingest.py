"""Ingest of a 100k-request (~45 MB) batch over HTTP vs. typed decode + bulk insert alone.

Baseline, in the same run: msgspec decode of the same body into the same structs,
then one executemany of 100k rows into a fresh SQLite file (WAL, same table and
indexes, fsynced commit) — the least work any ingest must do. The server runs with
`--no-worker` so nothing else competes for the two cores.
"""

from __future__ import annotations

import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import msgspec

from batchyard.store import migrations
from batchyard.store.sqlite import _split_sql
from batchyard.wire.batches import BatchCreateIn
from bench.common import batch_body, headers, mb, proc_status, start_server

N = 100_000


def baseline(body: bytes) -> float:
    path = Path(tempfile.mkdtemp(prefix="batchyard-bench-")) / "base.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    for m in migrations.load("sqlite"):
        for statement in _split_sql(m.sql):
            conn.execute(statement)
    t0 = time.perf_counter()
    decoded = msgspec.json.decode(body, type=BatchCreateIn)
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO requests (key, batch_seq, custom_id, params) VALUES (?, ?, ?, ?)",
        ((i, 1, r.custom_id, memoryview(r.params)) for i, r in enumerate(decoded.requests)),
    )
    conn.execute("COMMIT")
    return time.perf_counter() - t0


def main() -> None:
    body = batch_body(N)
    server, _ = start_server("--no-worker")
    try:
        with httpx.Client(base_url=server.base_url, headers=headers(), timeout=300) as c:
            c.post("/v1/messages/batches", content=batch_body(100)).raise_for_status()
            rss_before = proc_status(server.popen.pid, "VmRSS")
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                r = c.post("/v1/messages/batches", content=body)
                times.append(time.perf_counter() - t0)
                r.raise_for_status()
                assert r.json()["request_counts"]["processing"] == N
        peak = proc_status(server.popen.pid, "VmHWM")
    finally:
        server.stop()
    elapsed = statistics.median(times)
    base = statistics.median(baseline(body) for _ in range(3))
    growth = peak - rss_before
    print(f"ingest of {N:,} requests, body {mb(len(body))} (medians of 3 runs each)")
    print(f"  HTTP create, end to end   {elapsed:6.2f} s  ({len(body) / elapsed / 1e6:.0f} MB/s)")
    print(f"  baseline decode + insert  {base:6.2f} s")
    print(f"  ratio                     {elapsed / base:6.2f}x  (target <= 1.5x)")
    print(
        f"  server RSS {mb(rss_before)} before, peak {mb(peak)}: growth {mb(growth)}"
        f" = {growth / len(body):.2f}x the body (target <= 3x)"
    )


if __name__ == "__main__":
    main()
