"""A worker killed with SIGKILL mid-batch loses nothing and duplicates nothing."""

from __future__ import annotations

import time
from pathlib import Path

import anthropic

from tests.conftest import ServerFactory, client_for, make_requests
from tests.databases import new_database, query
from tests.integration.test_batches_sdk import wait_ended
from tests.serverproc import WorkerProc


def test_sigkilled_worker_requests_run_again_exactly_once(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    db = new_database(tmp_path, "crash")
    api = start_server("--no-worker", database=db)
    client = client_for(api)
    n = 600
    batch = client.messages.batches.create(requests=make_requests(n, "k"))  # type: ignore[arg-type]

    worker_args = [
        "--fake-latency-ms", "30", "--fake-capacity", "40", "--lease", "1",
        "--housekeeping-interval", "0.2", "--poll-interval", "0.1",
    ]  # fmt: skip
    first = WorkerProc(db, tmp_path / "worker1.log", worker_args)
    try:
        deadline = time.monotonic() + 20
        while client.messages.batches.retrieve(batch.id).request_counts.succeeded < n // 4:
            assert time.monotonic() < deadline, first.log()
            time.sleep(0.02)
        first.kill()
    finally:
        first.stop()

    [(held,)] = query(db, "SELECT count(*) FROM requests WHERE state = 1")
    assert held > 0, "the kill should have left claimed requests behind"
    mid = client.messages.batches.retrieve(batch.id).request_counts
    assert mid.processing > 0 and mid.processing + mid.succeeded == n

    second = WorkerProc(db, tmp_path / "worker2.log", worker_args)
    try:
        ended = wait_ended(client, batch.id, timeout=60)
    finally:
        second.stop()
    assert ended.request_counts.succeeded == n
    assert ended.request_counts.processing == 0
    assert ended.request_counts.errored == 0

    results = list(client.messages.batches.results(batch.id))
    ids = [r.custom_id for r in results]
    assert len(ids) == n and set(ids) == {f"k-{i}" for i in range(n)}
    assert all(r.result.type == "succeeded" for r in results)

    states = dict(query(db, "SELECT state, count(*) FROM requests GROUP BY state"))
    assert states == {2: n}
    [(reran,)] = query(db, "SELECT count(*) FROM requests WHERE attempts > 1")
    assert reran >= held  # the requests the dead worker held were claimed again


def test_api_and_separate_worker_share_a_database(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    db = new_database(tmp_path, "split")
    api = start_server("--no-worker", database=db)
    client = client_for(api)
    batch = client.messages.batches.create(requests=make_requests(50, "s"))  # type: ignore[arg-type]
    time.sleep(0.3)
    assert client.messages.batches.retrieve(batch.id).request_counts.processing == 50  # no worker

    worker = WorkerProc(db, tmp_path / "w.log", ["--poll-interval", "0.1"])
    try:
        assert wait_ended(client, batch.id).request_counts.succeeded == 50
    finally:
        worker.stop()
    assert worker.popen.returncode == 0, worker.log()  # SIGTERM is a clean shutdown


def test_injected_engine_faults_are_retried(start_server: ServerFactory) -> None:
    server = start_server(
        "--fake-error-rate", "0.3", "--fake-seed", "7", "--retry-base", "0.01",
        "--max-attempts", "20", "--poll-interval", "0.05",
    )  # fmt: skip
    client = client_for(server)
    batch = client.messages.batches.create(requests=make_requests(200, "f"))  # type: ignore[arg-type]
    ended = wait_ended(client, batch.id, timeout=60)
    assert ended.request_counts.succeeded == 200


def test_exhausted_retries_end_errored_with_the_engine_error(
    start_server: ServerFactory,
) -> None:
    server = start_server(
        "--fake-error-rate", "1", "--retry-base", "0.01", "--max-attempts", "3",
        "--poll-interval", "0.05",
    )  # fmt: skip
    client = client_for(server)
    batch = client.messages.batches.create(requests=make_requests(5, "e"))  # type: ignore[arg-type]
    ended = wait_ended(client, batch.id, timeout=30)
    assert ended.request_counts.errored == 5
    for r in client.messages.batches.results(batch.id):
        assert r.result.type == "errored"
        assert r.result.error.error.type in ("overloaded_error", "rate_limit_error", "api_error")
        assert "injected" in r.result.error.error.message


def test_client_view_is_consistent(client: anthropic.Anthropic) -> None:
    """Counts always sum to the number of requests while the batch runs."""
    batch = client.messages.batches.create(requests=make_requests(300, "sum"))  # type: ignore[arg-type]
    while True:
        b = client.messages.batches.retrieve(batch.id)
        c = b.request_counts
        assert c.processing + c.succeeded + c.errored + c.canceled + c.expired == 300
        if b.processing_status == "ended":
            break


def test_two_workers_share_one_batch_and_survive_a_kill(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    db = new_database(tmp_path, "pair")
    api = start_server("--no-worker", database=db)
    client = client_for(api)
    n = 800
    batch = client.messages.batches.create(requests=make_requests(n, "p"))  # type: ignore[arg-type]
    args = [
        "--fake-latency-ms", "20", "--fake-capacity", "20", "--lease", "1",
        "--housekeeping-interval", "0.2", "--poll-interval", "0.1",
    ]  # fmt: skip
    workers = [WorkerProc(db, tmp_path / f"pw{i}.log", args) for i in range(2)]
    holders: set[str] = set()
    try:
        deadline = time.monotonic() + 20
        while client.messages.batches.retrieve(batch.id).request_counts.succeeded < n // 3:
            assert time.monotonic() < deadline
            rows = query(db, "SELECT DISTINCT worker FROM requests WHERE state = 1")
            holders.update(w for (w,) in rows)
            time.sleep(0.02)
        workers[0].kill()
        ended = wait_ended(client, batch.id, timeout=60)
    finally:
        for w in workers:
            w.stop()
    assert ended.request_counts.succeeded == n
    assert len(holders) == 2  # both workers held claims at once
    assert query(db, "SELECT count(*) FROM requests WHERE state = 2") == [(n,)]
    ids = [r.custom_id for r in client.messages.batches.results(batch.id)]
    assert sorted(ids) == sorted(f"p-{i}" for i in range(n))
