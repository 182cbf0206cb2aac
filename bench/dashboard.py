"""The dashboard's pages on a finished 100k-request batch (1% of it errored).

One `serve` (API + worker, zero-latency fake engine). Each page is fetched
sequentially on one signed-in connection; reported: the median time of each, and
its ratio to the API's `GET /v1/messages/batches/{id}` measured the same way in the
same run (the baseline: one indexed row read, encoded to JSON).

    python -m bench.dashboard [N] [--store sqlite|postgres] [--reps 15]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import msgspec
from tests.serverproc import ADMIN_KEY, Server

from bench.common import PROMPT, headers, wait_ended
from bench.scale import bench_cluster, fresh_pg


def body(n: int) -> bytes:
    return msgspec.json.encode(
        {
            "requests": [
                {
                    "custom_id": f"request-{i:06d}",
                    "params": {
                        "model": "no-such-model" if i % 100 == 0 else "claude-bench",
                        "max_tokens": 128,
                        "messages": [{"role": "user", "content": f"{PROMPT}{i}."}],
                    },
                }
                for i in range(n)
            ]
        }
    )


def median_ms(client: httpx.Client, path: str, reps: int) -> float:
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        r = client.get(path)
        times.append(time.perf_counter() - started)
        assert r.status_code == 200, (path, r.status_code, r.text[:200])
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", nargs="?", type=int, default=100_000)
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--reps", type=int, default=15)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="batchyard-bench-dashboard-"))
    database = fresh_pg(bench_cluster()) if args.store == "postgres" else str(folder / "db.sqlite")
    server = Server(database, folder / "server.log", ["--poll-interval", "0.05"])
    try:
        with httpx.Client(base_url=server.base_url, headers=headers(), timeout=600) as api:
            r = api.post("/v1/messages/batches", content=body(args.n))
            r.raise_for_status()
            batch_id = r.json()["id"]
        wait_ended(server.base_url, batch_id)
        with httpx.Client(base_url=server.base_url, timeout=600) as web:
            assert web.post("/ui/login", data={"key": ADMIN_KEY}).status_code == 303
            with httpx.Client(base_url=server.base_url, headers=headers()) as api:
                baseline = median_ms(api, f"/v1/messages/batches/{batch_id}", args.reps)
            middle = f"request-{args.n // 2:06d}"
            pages = {
                "batch list (/ui)": "/ui",
                "live summary fragment, later views": f"/ui/fragments/batches/{batch_id}",
                "results page 1 (errors first)": f"/ui/batches/{batch_id}",
                "results page 1000": f"/ui/batches/{batch_id}?page=1000",
                "search custom_id 'request-0999'": f"/ui/batches/{batch_id}?q=request-0999",
                "errored only, page 1": f"/ui/batches/{batch_id}?kind=errored",
                "one result": f"/ui/batches/{batch_id}/results/{middle}",
            }
            print(f"{args.n:,} requests, store {args.store}, median of {args.reps}")
            print(f"  {'API retrieve (baseline)':36s} {baseline:8.1f} ms   x1.0")
            # The first view of a batch scans it for the timeline (kept afterwards;
            # a running batch's is rescanned at most every 5 s).
            first = median_ms(web, f"/ui/fragments/batches/{batch_id}", 1)
            print(
                f"  {'summary, first view (timeline scan)':36s} {first:8.1f} ms   x{first / baseline:.1f}"
            )
            for name, path in pages.items():
                ms = median_ms(web, path, args.reps)
                print(f"  {name:36s} {ms:8.1f} ms   x{ms / baseline:.1f}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
