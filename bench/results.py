"""Results download of 100k results over HTTP vs. reading the same rows from SQLite.

Baseline, in the same run: one SELECT of every stored results line of the batch
from the same database file, in-process (the least work any download must do).
The server's RSS is read before and after to show the stream is flat in memory.
"""

from __future__ import annotations

import sqlite3
import statistics
import time

import httpx

from bench.common import batch_body, headers, mb, proc_status, start_server, wait_ended

N = 100_000


def main() -> None:
    server, _ = start_server()
    try:
        with httpx.Client(base_url=server.base_url, headers=headers(), timeout=300) as c:
            r = c.post("/v1/messages/batches", content=batch_body(N))
            r.raise_for_status()
            batch_id = r.json()["id"]
            wait_ended(server.base_url, batch_id)
            rss_before = proc_status(server.popen.pid, "VmRSS")
            times, size, lines = [], 0, 0
            for _ in range(3):
                t0 = time.perf_counter()
                size, lines = 0, 0
                with c.stream("GET", f"/v1/messages/batches/{batch_id}/results") as resp:
                    resp.raise_for_status()
                    for chunk in resp.iter_raw(1 << 20):
                        size += len(chunk)
                        lines += chunk.count(b"\n")
                times.append(time.perf_counter() - t0)
            rss_after = proc_status(server.popen.pid, "VmRSS")
        assert lines == N, lines
        db = sqlite3.connect(server.database)
        base_times = []
        for _ in range(3):
            t0 = time.perf_counter()
            stored = sum(len(row[0]) for row in db.execute("SELECT result FROM requests"))
            base_times.append(time.perf_counter() - t0)
    finally:
        server.stop()
    elapsed, base = statistics.median(times), statistics.median(base_times)
    print(f"results download of {N:,} results, {mb(size)} (medians of 3)")
    print(
        f"  HTTP download             {elapsed:6.2f} s  ({size / elapsed / 1e6:5.0f} MB/s, target >= 300)"
    )
    print(f"  baseline SELECT of lines  {base:6.2f} s  ({stored / base / 1e6:5.0f} MB/s)")
    print(f"  ratio                     {elapsed / base:6.2f}x")
    print(f"  server RSS {mb(rss_before)} before, {mb(rss_after)} after 3 downloads")


if __name__ == "__main__":
    main()
