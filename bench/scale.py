"""Scale-out: scheduling throughput with 1, 2 and 4 `batchyard worker` processes.

One API process (`serve --no-worker`) takes a batch of N requests; W worker
processes on the zero-latency fake engine run it; the time from the create's
answer to `ended` gives requests/s. Run on PostgreSQL (a cluster of its own with
fsync on, started by scripts/postgres.sh) and on one SQLite file for comparison.
Ratios are against 1 worker on the same store, in the same run.

    python -m bench.scale [N] [--stores postgres,sqlite] [--workers 1,2,4]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from tests.serverproc import Server, WorkerProc

from bench.common import ROOT, batch_body, headers, wait_ended


def bench_cluster() -> str:
    url = subprocess.run(
        [str(ROOT / "scripts" / "postgres.sh"), "/tmp/batchyard-bench-pg", "54330", "on"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return url


def fresh_pg(url: str) -> str:
    name = f"bench_{uuid.uuid4().hex[:12]}"
    subprocess.run(
        ["psql", url, "-qc", f'CREATE DATABASE "{name}"'], check=True, capture_output=True
    )
    return url.rsplit("/", 1)[0] + "/" + name


def run(database: str, workers: int, n: int, folder: Path) -> float:
    api = Server(database, folder / "api.log", ["--no-worker"])
    args = ["--poll-interval", "0.05", "--fake-capacity", "1024"]
    procs = [WorkerProc(database, folder / f"w{i}.log", args) for i in range(workers)]
    try:
        time.sleep(1.5)  # the workers are up and polling
        with httpx.Client(base_url=api.base_url, headers=headers(), timeout=300) as c:
            r = c.post("/v1/messages/batches", content=batch_body(n))
            r.raise_for_status()
            created = time.perf_counter()
        ended, batch = wait_ended(api.base_url, r.json()["id"], poll=0.05)
        assert batch["request_counts"]["succeeded"] == n, batch  # type: ignore[index]
        return n / (ended - created)
    finally:
        for p in procs:
            p.stop()
        api.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", type=int, nargs="?", default=50_000)
    parser.add_argument("--stores", default="postgres,sqlite")
    parser.add_argument("--workers", default="1,2,4")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    pg = bench_cluster() if "postgres" in args.stores else ""
    print(f"scale-out: {args.n:,} requests, zero-latency fake engine, 1 API + W workers")
    for store in args.stores.split(","):
        base = None
        for w in counts:
            folder = Path(tempfile.mkdtemp(prefix=f"batchyard-scale-{store}-{w}-"))
            database = fresh_pg(pg) if store == "postgres" else str(folder / "db.sqlite")
            rate = run(database, w, args.n, folder)
            base = base or rate
            print(f"  {store:8} {w} worker(s) {rate:9,.0f} requests/s   x{rate / base:.2f}")


if __name__ == "__main__":
    main()
