"""How right a batch's ETA (`batchyard_eta`) is: one batch of N requests on the fake
engine with latency, through a real server (API + worker, SQLite), polled as an SDK
client polls. At the first poll past 25%, 50% and 75% done, the ETA's `ends_at` is
compared with when the batch really ended; printed: the error in seconds and as a
share of the time that was left, next to the lifetime-average ETA (done / elapsed)
that the dashboard used to show.

`--second`: a second batch of the same size (another workspace) starts when the
first is 25% done, so the first's share of the engine halves while it runs: the
ETA has to follow a rate that changes.

    python -m bench.eta [N] [--latency-ms 50] [--capacity 8] [--poll 0.25] [--second]
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime

import httpx
import msgspec

from bench.common import PROMPT, headers, start_server


def body(n: int, prefix: str) -> bytes:
    return msgspec.json.encode(
        {
            "requests": [
                {
                    "custom_id": f"{prefix}-{i:06d}",
                    "params": {
                        "model": "claude-bench",
                        "max_tokens": 32,
                        "messages": [{"role": "user", "content": f"{PROMPT}{i}."}],
                    },
                }
                for i in range(n)
            ]
        }
    )


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", nargs="?", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--capacity", type=int, default=8)
    parser.add_argument("--poll", type=float, default=0.25)
    parser.add_argument("--second", action="store_true")
    args = parser.parse_args()
    server, _ = start_server(
        "--fake-latency-ms", str(args.latency_ms), "--fake-capacity", str(args.capacity)
    )
    marks = (25, 50, 75)
    taken: dict[int, tuple[float, int, float | None, float | None, float | None]] = {}
    first_eta: float | None = None
    try:
        with httpx.Client(base_url=server.base_url, headers=headers(), timeout=60) as c:
            created = c.post("/v1/messages/batches", content=body(args.n, "a")).json()
            batch_id, created_at = created["id"], epoch(created["created_at"])
            second_started = False
            while True:
                batch = c.get(f"/v1/messages/batches/{batch_id}").json()
                now = time.time()
                if batch["processing_status"] == "ended":
                    ended_at = epoch(batch["ended_at"])
                    break
                counts = batch["request_counts"]
                done = counts["succeeded"] + counts["errored"]
                eta = batch.get("batchyard_eta") or {}
                ends = epoch(eta["ends_at"]) if eta.get("ends_at") else None
                if ends is not None and first_eta is None:
                    first_eta = now - created_at
                average = done / (now - created_at) if done else None
                naive = now + counts["processing"] / average if average else None
                for mark in marks:
                    if mark not in taken and done >= args.n * mark / 100:
                        taken[mark] = (now, done, ends, naive, eta.get("requests_per_second"))
                if args.second and not second_started and done >= args.n / 4:
                    second_started = True
                    other = {**headers(), "x-api-key": _second_key(c)}
                    c.post("/v1/messages/batches", content=body(args.n, "b"), headers=other)
                time.sleep(args.poll)
    finally:
        server.stop()
    took = ended_at - created_at
    first = f"{first_eta:.2f} s after creation" if first_eta is not None else "never"
    print(
        f"bench.eta: {args.n} requests, fake engine {args.latency_ms:g} ms x {args.capacity}"
        f"{' + a second batch from 25%' if args.second else ''}: took {took:.1f} s"
        f" ({args.n / took:.0f}/s); first ETA: {first}"
    )
    print(f"{'at':>4} {'done':>6} {'left s':>7} {'rate/s':>7} {'ETA err s':>9} {'err %':>6}"
          f" {'avg-ETA err s':>13} {'err %':>6}")  # fmt: skip
    for mark in marks:
        if mark not in taken:
            print(f"{mark:>3}% (not sampled)")
            continue
        at, done, ends, naive, rate = taken[mark]
        left = ended_at - at
        err = (
            f"{ends - ended_at:+9.2f} {100 * (ends - ended_at) / left:+5.1f}%" if ends else " " * 9
        )
        nerr = (
            f"{naive - ended_at:+13.2f} {100 * (naive - ended_at) / left:+5.1f}%" if naive else ""
        )
        shown_rate = f"{rate:7.1f}" if rate is not None else f"{'-':>7}"
        print(f"{mark:>3}% {done:>6} {left:7.2f} {shown_rate} {err} {nerr}")


def _second_key(c: httpx.Client) -> str:
    """A key of a second workspace (the admin key acts in the default one)."""
    r = c.post("/v1/organizations/workspaces", json={"name": "bench-eta-2"})
    r.raise_for_status()
    k = c.post("/v1/organizations/api_keys", json={"name": "b", "workspace_id": r.json()["id"]})
    k.raise_for_status()
    return str(k.json()["key"])


if __name__ == "__main__":
    main()
