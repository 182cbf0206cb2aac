"""Expiry and retention on the real server, with short periods configured."""

from __future__ import annotations

import time

import anthropic
import pytest

from tests.conftest import ServerFactory, client_for, make_requests
from tests.integration.test_batches_sdk import wait_ended


def test_unfinished_requests_expire(start_server: ServerFactory) -> None:
    server = start_server(
        "--batch-expiry", "1.5s", "--fake-latency-ms", "100", "--fake-capacity", "1",
        "--housekeeping-interval", "0.1",
    )  # fmt: skip
    client = client_for(server)
    batch = client.messages.batches.create(requests=make_requests(100, "x"))  # type: ignore[arg-type]
    assert (batch.expires_at - batch.created_at).total_seconds() == pytest.approx(1.5, abs=0.01)
    ended = wait_ended(client, batch.id, timeout=20)
    c = ended.request_counts
    assert c.expired > 50 and c.succeeded > 0
    assert c.expired + c.succeeded == 100
    assert ended.ended_at is not None and ended.ended_at >= ended.expires_at
    results = list(client.messages.batches.results(batch.id))
    assert sum(r.result.type == "expired" for r in results) == c.expired
    assert len(results) == 100


def test_results_are_deleted_after_retention(start_server: ServerFactory) -> None:
    server = start_server("--results-retention", "1s", "--housekeeping-interval", "0.1")
    client = client_for(server)
    batch = client.messages.batches.create(requests=make_requests(3, "r"))  # type: ignore[arg-type]
    wait_ended(client, batch.id)
    assert len(list(client.messages.batches.results(batch.id))) == 3
    deadline = time.monotonic() + 10
    while (archived := client.messages.batches.retrieve(batch.id)).archived_at is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert archived.request_counts.succeeded == 3  # the batch can still be viewed
    with pytest.raises(anthropic.NotFoundError) as exc:
        client.messages.batches.results(batch.id)
    assert "retention" in exc.value.message
