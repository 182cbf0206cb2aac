"""Cost of admission (key lookup, workspace, headers) on small API calls.

Two servers in one run: one with `--no-auth` (no store reads before the route)
and one checking a stored workspace key. Each gets the same sequential
`GET /v1/messages/batches?limit=1` and `POST /v1/messages/count_tokens` calls
over one keep-alive connection. Reported: calls/s and the ratio keyed/no-auth.
"""

from __future__ import annotations

import sys
import time

import httpx

from bench.common import headers, start_server


def rate(base_url: str, key_headers: dict[str, str], n: int) -> tuple[float, float]:
    body = {"model": "claude-test", "messages": [{"role": "user", "content": "hello"}]}
    with httpx.Client(base_url=base_url, headers=key_headers, timeout=30) as c:
        for _ in range(50):  # warm-up
            c.get("/v1/messages/batches", params={"limit": 1}).raise_for_status()
        t = time.perf_counter()
        for _ in range(n):
            c.get("/v1/messages/batches", params={"limit": 1}).raise_for_status()
        reads = n / (time.perf_counter() - t)
        t = time.perf_counter()
        for _ in range(n):
            c.post("/v1/messages/count_tokens", json=body).raise_for_status()
        counts = n / (time.perf_counter() - t)
    return reads, counts


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    open_server, _ = start_server("--no-auth", "--engine", "fake")
    keyed_server, _ = start_server("--engine", "fake")
    try:
        r = httpx.post(
            f"{keyed_server.base_url}/v1/organizations/api_keys",
            headers=headers(),
            json={"name": "bench", "workspace_id": "wrkspc_default"},
        )
        r.raise_for_status()
        user = {**headers(), "x-api-key": r.json()["key"]}
        base = rate(open_server.base_url, headers(), n)
        keyed = rate(keyed_server.base_url, user, n)
    finally:
        open_server.stop()
        keyed_server.stop()
    print(f"admission cost, {n:,} sequential calls each (fake engine, one connection)")
    for name, a, b in (("list batches", base[0], keyed[0]), ("count_tokens", base[1], keyed[1])):
        print(f"  {name:14} no-auth {a:7,.0f}/s   stored key {b:7,.0f}/s   ratio {b / a:.2f}")


if __name__ == "__main__":
    main()
