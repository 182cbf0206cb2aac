"""Reads under load: 50 clients poll and list while a 100k-request batch runs.

One `serve` (API + worker, zero-latency fake engine). Each client alternates
`GET /v1/messages/batches/{id}` and `GET /v1/messages/batches?limit=20` on its own
connection until the batch ends. Reported: read latency p50/p99/max, reads/s, and
the batch's scheduling rate with and without the readers (same run).

    python -m bench.readers [N] [--clients 50] [--store sqlite|postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from tests.serverproc import Server

from bench.common import batch_body, headers
from bench.scale import bench_cluster, fresh_pg


async def reader(base_url: str, batch_id: str, latencies: list[float], stop: asyncio.Event) -> int:
    errors = 0
    async with httpx.AsyncClient(base_url=base_url, headers=headers(), timeout=60) as c:
        i = 0
        while not stop.is_set():
            t = time.perf_counter()
            if i % 2:
                r = await c.get("/v1/messages/batches", params={"limit": 20})
            else:
                r = await c.get(f"/v1/messages/batches/{batch_id}")
            latencies.append(time.perf_counter() - t)
            errors += r.status_code != 200
            if i % 2 == 0 and r.status_code == 200 and r.json()["processing_status"] == "ended":
                stop.set()
            i += 1
    return errors


async def run(database: str, n: int, clients: int, folder: Path) -> tuple[float, list[float], int]:
    server = Server(database, folder / f"server-{clients}.log", ["--poll-interval", "0.05"])
    try:
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers(), timeout=300) as c:
            r = await c.post("/v1/messages/batches", content=batch_body(n))
            r.raise_for_status()
            created = time.perf_counter()
            batch_id = r.json()["id"]
            latencies: list[float] = []
            stop = asyncio.Event()
            if clients:
                results = await asyncio.gather(
                    *(reader(server.base_url, batch_id, latencies, stop) for _ in range(clients))
                )
            else:
                results = [await reader(server.base_url, batch_id, [], stop)]
            elapsed = time.perf_counter() - created
        return n / elapsed, latencies, sum(results)
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", type=int, nargs="?", default=100_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--store", default="sqlite")
    args = parser.parse_args()
    pg = bench_cluster() if args.store == "postgres" else ""
    folder = Path(tempfile.mkdtemp(prefix="batchyard-readers-"))

    def database(name: str) -> str:
        return fresh_pg(pg) if pg else str(folder / f"{name}.sqlite")

    alone, _, _ = asyncio.run(run(database("alone"), args.n, 0, folder))
    rate, lat, errors = asyncio.run(run(database("read"), args.n, args.clients, folder))
    lat.sort()
    q = statistics.quantiles(lat, n=100)
    print(f"reads under load: {args.n:,} requests, {args.clients} clients, {args.store}")
    print(
        f"  read latency  p50 {q[49] * 1000:6.1f} ms   p99 {q[98] * 1000:6.1f} ms"
        f"   max {lat[-1] * 1000:6.1f} ms   ({len(lat):,} reads, {errors} errors)"
    )
    print(f"  scheduling    {alone:9,.0f} requests/s alone, {rate:9,.0f} with readers")


if __name__ == "__main__":
    main()
