"""`GET /metrics`, parsed by prometheus_client's own parser."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ServerFactory, client_for, make_requests
from tests.serverproc import Server, WorkerProc, free_port


def samples(base_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = httpx.get(f"{base_url}/metrics")  # no key: scrapers do not send one
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def test_metrics_follow_a_batch(start_server: ServerFactory) -> None:
    server = start_server("--poll-interval", "0.05")
    client = client_for(server)
    batch = client.messages.batches.create(requests=make_requests(30, "m"))  # type: ignore[arg-type]
    while client.messages.batches.retrieve(batch.id).processing_status != "ended":
        time.sleep(0.05)
    message = client.messages.create(
        model="claude-test", max_tokens=10, messages=[{"role": "user", "content": "hi there"}]
    )
    m = samples(server.base_url)
    assert m[("batchyard_batch_requests_total", (("outcome", "succeeded"),))] == 30
    assert m[("batchyard_queue_depth", ())] == 0 and m[("batchyard_open_batches", ())] == 0
    created = (("method", "POST"), ("route", "create_batch"), ("status", "200"))
    assert m[("batchyard_http_requests_total", created)] == 1
    polled = [v for (name, labels), v in m.items()
              if name == "batchyard_http_requests_total" and ("route", "retrieve_batch") in labels]  # fmt: skip
    assert sum(polled) >= 1
    standard_out = m[("batchyard_tokens_total", (("direction", "output"), ("tier", "standard")))]
    assert standard_out == message.usage.output_tokens
    assert m[("batchyard_tokens_total", (("direction", "output"), ("tier", "batch")))] > 0
    assert m[("batchyard_engine_call_duration_seconds_count", (("engine", "fake"),))] == 30
    completed = ("batchyard_batch_duration_seconds_count", (("outcome", "completed"),))
    deadline = time.monotonic() + 5
    while m.get(completed) != 1 and time.monotonic() < deadline:  # observed after the flush
        time.sleep(0.05)
        m = samples(server.base_url)
    assert m.get(completed) == 1

    # A batch still running shows in the queue gauges.
    slow = start_server("--fake-latency-ms", "500", "--fake-capacity", "1")
    client_for(slow).messages.batches.create(requests=make_requests(5, "q"))  # type: ignore[arg-type]
    q = samples(slow.base_url)
    assert q[("batchyard_open_batches", ())] == 1 and 1 <= q[("batchyard_queue_depth", ())] <= 5


def test_batch_durations_by_how_batches_ended(start_server: ServerFactory) -> None:
    server = start_server(
        "--fake-latency-ms", "300", "--fake-capacity", "1", "--batch-expiry", "1.5",
        "--housekeeping-interval", "0.1",
    )  # fmt: skip
    client = client_for(server)
    started = time.monotonic()
    expiring = client.messages.batches.create(requests=make_requests(50, "e"))  # type: ignore[arg-type]
    quick = client.messages.batches.create(requests=make_requests(2, "c"))  # type: ignore[arg-type]
    client.messages.batches.cancel(quick.id)  # queued or in flight: ends at once or soon
    ids = (expiring.id, quick.id)
    while any(client.messages.batches.retrieve(i).processing_status != "ended" for i in ids):
        assert time.monotonic() - started < 20
        time.sleep(0.05)
    took = time.monotonic() - started
    deadline = time.monotonic() + 5
    while True:  # the worker observes the batches it ended after its next flush
        m = samples(server.base_url)
        count = {
            outcome: m.get(("batchyard_batch_duration_seconds_count", (("outcome", outcome),)))
            for outcome in ("canceled", "expired", "completed")
        }
        if count == {"canceled": 1, "expired": 1, "completed": None} or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert count == {"canceled": 1, "expired": 1, "completed": None}
    expired_sum = m[("batchyard_batch_duration_seconds_sum", (("outcome", "expired"),))]
    assert 1.5 <= expired_sum <= took + 1


def test_a_standalone_worker_serves_its_own_metrics(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    api = start_server("--no-worker")
    port = free_port()
    worker = WorkerProc(
        api.database,
        tmp_path / "worker.log",
        ["--metrics-port", str(port), "--poll-interval", "0.05"],
    )
    try:
        client = client_for(api)
        batch = client.messages.batches.create(requests=make_requests(20, "w"))  # type: ignore[arg-type]
        deadline = time.monotonic() + 20
        while client.messages.batches.retrieve(batch.id).processing_status != "ended":
            assert time.monotonic() < deadline, worker.log()
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        completed = ("batchyard_batch_duration_seconds_count", (("outcome", "completed"),))
        while (m := samples(url)).get(completed) != 1:  # observed after the worker's flush
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert m[("batchyard_batch_requests_total", (("outcome", "succeeded"),))] == 20
        assert m[("batchyard_engine_call_duration_seconds_count", (("engine", "fake"),))] == 20
        assert m[("batchyard_tokens_total", (("direction", "output"), ("tier", "batch")))] > 0
        # The store-wide gauges are the API's to report, not each worker's.
        assert ("batchyard_queue_depth", ()) not in m
        assert samples(api.base_url)[("batchyard_queue_depth", ())] == 0
    finally:
        worker.stop()


def test_json_logs_carry_the_request_id(start_server: ServerFactory) -> None:
    import json

    from tests.serverproc import HEADERS

    server = start_server(env={"BATCHYARD_LOG_FORMAT": "json"})
    r = httpx.post(
        f"{server.base_url}/v1/organizations/workspaces", headers=HEADERS, json={"name": "logged"}
    )
    assert r.status_code == 200
    entries = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    audit = [e for e in entries if e["logger"] == "batchyard.audit"]
    assert audit and audit[0]["request_id"] == r.headers["request-id"]
    assert "workspace" in audit[0]["message"] and audit[0]["level"] == "info"
    assert any(e["logger"].startswith("uvicorn") for e in entries)  # the server's own lines too


def test_docs_page_lists_the_operations(server: Server) -> None:
    page = httpx.get(f"{server.base_url}/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/v1/messages/batches/{batch_id}/results" in page.text
    assert "/v1/chat/completions" in page.text and "openapi.json" in page.text
    assert "<script" not in page.text
