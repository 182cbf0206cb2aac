"""The store fails under the server: PostgreSQL restarts or turns read-only, a SQLite
disk fills up (a read-only remount is refused while the file is open, so the
read-only case is tested on PostgreSQL). The API answers 5xx in the error shape (never a
traceback), nothing is half-written, and everything recovers."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import pytest
from anthropic.types.messages import MessageBatch

from tests.conftest import ServerFactory, client_for, make_requests
from tests.databases import ON_POSTGRES, PG_URL, Cluster, query
from tests.serverproc import HEADERS, WorkerProc

needs_postgres = pytest.mark.skipif(
    not (ON_POSTGRES and PG_URL), reason="PostgreSQL pass only (make test's second pass)"
)
needs_sqlite_pass = pytest.mark.skipif(ON_POSTGRES, reason="SQLite pass only")


def retrieve_tolerant(client: anthropic.Anthropic, batch_id: str) -> MessageBatch:
    """Poll through an outage: 503s and refused connections are expected while it lasts."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return client.messages.batches.retrieve(batch_id)
        except (anthropic.InternalServerError, anthropic.APIConnectionError):
            assert time.monotonic() < deadline, "the API did not come back"
            time.sleep(0.2)


def wait_ended_through_outages(client: anthropic.Anthropic, batch_id: str) -> None:
    deadline = time.monotonic() + 120
    while retrieve_tolerant(client, batch_id).processing_status != "ended":
        assert time.monotonic() < deadline, "batch did not end"
        time.sleep(0.1)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    # Not under pytest's tmp_path: the `postgres` user must be able to enter the folder.
    folder = Path(tempfile.mkdtemp(prefix="batchyard-pg-"))
    c = Cluster(folder, 54331)
    yield c
    with contextlib.suppress(Exception):
        c.stop()
    shutil.rmtree(folder, ignore_errors=True)


@needs_postgres
def test_postgres_restarted_mid_batch(
    cluster: Cluster, start_server: ServerFactory, tmp_path: Path
) -> None:
    db = cluster.database("restart")
    args = ["--fake-latency-ms", "20", "--fake-capacity", "20", "--poll-interval", "0.05"]
    api = start_server(*args, database=db)  # API + one worker in-process
    worker = WorkerProc(db, tmp_path / "worker.log", args)  # and one on its own
    client = client_for(api)
    n = 3000
    batch = client.messages.batches.create(requests=make_requests(n, "r"))  # type: ignore[arg-type]
    try:
        while retrieve_tolerant(client, batch.id).request_counts.succeeded < n // 4:
            time.sleep(0.05)
        cluster.pg_ctl("restart", "-m", "fast")
        # During and after the restart the API answers in its error shape or serves.
        r = httpx.get(f"{api.base_url}/v1/messages/batches/{batch.id}", headers=HEADERS)
        assert r.status_code in (200, 503), r.text
        assert r.headers["content-type"] == "application/json" and "Traceback" not in r.text
        wait_ended_through_outages(client, batch.id)
    finally:
        worker.stop()
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.request_counts.succeeded == n and ended.request_counts.errored == 0
    ids = [r.custom_id for r in client.messages.batches.results(batch.id)]
    assert sorted(ids) == sorted(f"r-{i}" for i in range(n))
    assert query(db, "SELECT count(*) FROM requests WHERE state = 2") == [(n,)]


@needs_postgres
def test_postgres_read_only_gives_503_then_recovers(
    cluster: Cluster, start_server: ServerFactory
) -> None:
    db = cluster.database("readonly")
    api = start_server(database=db)
    client = client_for(api)
    kept = client.messages.batches.create(requests=make_requests(5, "kept"))  # type: ignore[arg-type]
    cluster.sql("ALTER SYSTEM SET default_transaction_read_only = on")
    cluster.sql("SELECT pg_reload_conf()")
    try:
        time.sleep(0.3)
        with pytest.raises(anthropic.InternalServerError) as refused:
            client.messages.batches.create(requests=make_requests(5, "lost"))  # type: ignore[arg-type]
        assert refused.value.status_code == 503
        assert refused.value.body["error"]["type"] == "api_error"  # type: ignore[index]
        assert "try again" in refused.value.message
        assert client.messages.batches.retrieve(kept.id).id == kept.id  # reads still work
    finally:
        cluster.sql("ALTER SYSTEM RESET default_transaction_read_only")
        cluster.sql("SELECT pg_reload_conf()")
    time.sleep(0.3)
    made = client.messages.batches.create(requests=make_requests(5, "after"))  # type: ignore[arg-type]
    wait_ended_through_outages(client, made.id)
    wait_ended_through_outages(client, kept.id)
    assert [b.id for b in client.messages.batches.list()] == [made.id, kept.id]


@contextlib.contextmanager
def small_disk(folder: Path, size: str) -> Iterator[Path]:
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@needs_sqlite_pass
def test_sqlite_disk_full_gives_503_and_nothing_half_written(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    with small_disk(tmp_path / "disk", "4m") as disk:
        db = disk / "db.sqlite"
        api = start_server("--no-worker", database=db)
        client = client_for(api)
        made = []
        with pytest.raises(anthropic.InternalServerError) as full:
            for i in range(100):
                body = make_requests(400, f"b{i}")
                made.append(client.messages.batches.create(requests=body))  # type: ignore[arg-type]
        assert full.value.status_code == 503
        assert "full" in full.value.message and "try again" in full.value.message
        # What was accepted is whole; what was refused left no trace.
        listed = list(client.messages.batches.list(limit=1000))
        assert [b.id for b in listed] == [b.id for b in reversed(made)]
        assert query(db, "SELECT count(*) FROM requests") == [(400 * len(made),)]
        # More room: the same server accepts work again.
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        again = client.messages.batches.create(requests=make_requests(400, "again"))  # type: ignore[arg-type]
        assert client.messages.batches.retrieve(again.id).request_counts.processing == 400
        api.stop()


def test_engine_faults_and_hangs_all_end_within_the_retry_budget(
    start_server: ServerFactory,
) -> None:
    """30% of calls fail (429, 529, 500) and 5% never answer; every request still succeeds."""
    server = start_server(
        "--fake-error-rate", "0.3", "--fake-hang-rate", "0.05", "--fake-seed", "11",
        "--engine-timeout", "0.5", "--retry-base", "0.01", "--max-attempts", "30",
        "--poll-interval", "0.05", "--fake-capacity", "64",
    )  # fmt: skip
    client = client_for(server)
    n = 2000
    batch = client.messages.batches.create(requests=make_requests(n, "f"))  # type: ignore[arg-type]
    wait_ended_through_outages(client, batch.id)
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.request_counts.succeeded == n, ended.request_counts
    results = list(client.messages.batches.results(batch.id))
    assert sorted(r.custom_id for r in results) == sorted(f"f-{i}" for i in range(n))
    assert all(r.result.type == "succeeded" for r in results)
