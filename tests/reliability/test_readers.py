"""50 clients poll and list while a batch runs: every read answers, and what each
client sees is consistent (counts sum to the total and never go back).
The latency figures are in bench/readers.py; nothing here times anything."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.conftest import ServerFactory, make_requests
from tests.serverproc import HEADERS

pytestmark = pytest.mark.anyio


async def poll_and_list(base_url: str, batch_id: str, total: int) -> int:
    reads, last_done = 0, 0
    async with httpx.AsyncClient(base_url=base_url, headers=HEADERS, timeout=60) as c:
        while True:
            listed = await c.get("/v1/messages/batches", params={"limit": 20})
            assert listed.status_code == 200, listed.text
            assert batch_id in [b["id"] for b in listed.json()["data"]]
            r = await c.get(f"/v1/messages/batches/{batch_id}")
            assert r.status_code == 200, r.text
            reads += 2
            counts = r.json()["request_counts"]
            assert sum(counts.values()) == total
            done = total - counts["processing"]
            assert done >= last_done, "progress went back"
            last_done = done
            if r.json()["processing_status"] == "ended":
                assert counts["succeeded"] == total
                return reads


async def test_fifty_clients_reading_during_a_batch(start_server: ServerFactory) -> None:
    server = start_server("--fake-latency-ms", "2", "--poll-interval", "0.05")
    n = 20_000
    async with httpx.AsyncClient(base_url=server.base_url, headers=HEADERS, timeout=120) as c:
        r = await c.post("/v1/messages/batches", json={"requests": make_requests(n, "r")})
        assert r.status_code == 200, r.text
    reads = await asyncio.gather(
        *(poll_and_list(server.base_url, r.json()["id"], n) for _ in range(50))
    )
    assert all(count >= 2 for count in reads)
