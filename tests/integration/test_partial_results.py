"""`?partial=true`: the results of finished requests while the batch still runs."""

from __future__ import annotations

import json
import time

import httpx

from tests.conftest import ServerFactory, client_for, make_requests
from tests.serverproc import HEADERS


def test_partial_results_while_running(start_server: ServerFactory) -> None:
    server = start_server(
        "--fake-latency-ms", "100", "--fake-capacity", "4", "--poll-interval", "0.05"
    )
    client = client_for(server)
    batch = client.messages.batches.create(requests=make_requests(80, "p"))  # type: ignore[arg-type]
    url = f"{server.base_url}/v1/messages/batches/{batch.id}/results"
    deadline = time.monotonic() + 20
    while client.messages.batches.retrieve(batch.id).request_counts.succeeded < 8:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    before = client.messages.batches.retrieve(batch.id).request_counts.succeeded
    early = httpx.get(url, params={"partial": "true"}, headers=HEADERS)
    after = client.messages.batches.retrieve(batch.id)
    assert after.processing_status == "in_progress"
    lines = [json.loads(x) for x in early.text.splitlines()]
    assert before <= len(lines) <= after.request_counts.succeeded < 80
    assert all(x["result"]["type"] == "succeeded" for x in lines)
    assert len({x["custom_id"] for x in lines}) == len(lines)
    # Without the flag, results wait for the end, as on the hosted API.
    refused = httpx.get(url, headers=HEADERS)
    assert refused.status_code == 400 and "partial=true" in refused.json()["error"]["message"]
