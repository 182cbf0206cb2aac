"""Upstream rate limiting: a batch against a loopback server that allows N requests/s.

The stub answers after 200 ms and refuses (429, retry-after: 1) any request past
N in the last second. The OpenAI-compatible engine starts at 64 concurrent
requests; AIMD must bring it down to what N allows and hold there. Reported:
the sustained rate as a share of N (target >= 90%), and that nothing was lost.
"""

from __future__ import annotations

import sys
import time

import httpx
import msgspec
from tests.stubs import Stub

from bench.common import headers, start_server, wait_ended


def main() -> None:
    rate = float(sys.argv[1]) if len(sys.argv) > 1 else 50
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    with Stub(rate_limit=rate, latency=0.2) as stub:
        server, _ = start_server(
            "--engine", "openai", "--upstream-url", f"{stub.url}/v1", "--model", "m",
            "--capacity", "64", "--retry-base", "0.05", "--max-attempts", "100",
            "--poll-interval", "0.05",
        )  # fmt: skip
        try:
            body = {
                "requests": [
                    {"custom_id": f"r{i}", "params": {"model": "m", "max_tokens": 8,
                     "messages": [{"role": "user", "content": f"hello {i}"}]}}
                    for i in range(n)
                ]
            }  # fmt: skip
            with httpx.Client(base_url=server.base_url, headers=headers(), timeout=60) as c:
                r = c.post("/v1/messages/batches", content=msgspec.json.encode(body))
                created = time.perf_counter()
                ended, batch = wait_ended(server.base_url, r.json()["id"], timeout=3600)
                results = [
                    msgspec.json.decode(line)
                    for line in c.get(f"/v1/messages/batches/{r.json()['id']}/results").iter_lines()
                ]
        finally:
            server.stop()
    elapsed = ended - created
    ok = sum(1 for x in results if x["result"]["type"] == "succeeded")
    ids = {x["custom_id"] for x in results}
    print(f"upstream limited to {rate:.0f} requests/s, 200 ms a request, {n:,} requests:")
    print(
        f"  ended in {elapsed:5.1f} s: {n / elapsed:5.1f} requests/s = {n / elapsed / rate:6.1%} of the limit (target >= 90%)"
    )
    print(
        f"  succeeded {ok:,} of {n:,}, {len(ids):,} distinct results; counts {batch['request_counts']}"
    )
    print(f"  upstream answers: {dict(stub.statuses)}")


if __name__ == "__main__":
    main()
