"""kill -9, over and over: workers mid-batch, the API mid-upload. Nothing is lost,
nothing is done twice, nothing half-written is ever visible. Runs on the store of
the pass (SQLite files, then PostgreSQL in `make test`'s second pass)."""

from __future__ import annotations

import random
import socket
import time
from pathlib import Path

from bench.common import batch_body

from tests.conftest import ServerFactory, client_for, make_requests
from tests.databases import new_database, query
from tests.serverproc import ADMIN_KEY, WorkerProc

WORKER_ARGS = [
    "--fake-latency-ms", "40", "--fake-capacity", "10", "--lease", "1",
    "--housekeeping-interval", "0.2", "--poll-interval", "0.05",
]  # fmt: skip


def test_workers_killed_at_random_points_lose_and_repeat_nothing(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    db = new_database(tmp_path, "kills")
    api = start_server("--no-worker", database=db)
    client = client_for(api)
    n = 10_000
    batch = client.messages.batches.create(requests=make_requests(n, "k"))  # type: ignore[arg-type]
    rng = random.Random(20261126)
    workers = [WorkerProc(db, tmp_path / f"w{i}.0.log", WORKER_ARGS) for i in range(3)]
    kills = 0
    deadline = time.monotonic() + 240
    try:
        while client.messages.batches.retrieve(batch.id).processing_status != "ended":
            assert time.monotonic() < deadline, "batch did not end"
            time.sleep(rng.uniform(0.3, 1.2))
            counts = client.messages.batches.retrieve(batch.id).request_counts
            assert counts.processing + counts.succeeded == n  # exact at every moment
            if counts.processing == 0:
                break
            i = rng.randrange(3)
            workers[i].kill()  # SIGKILL: no flush, no goodbye
            workers[i].stop()
            kills += 1
            workers[i] = WorkerProc(db, tmp_path / f"w{i}.{kills}.log", WORKER_ARGS)
    finally:
        for w in workers:
            w.stop()
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert kills >= 5, f"only {kills} kills happened before the batch ended"
    assert ended.request_counts.succeeded == n and ended.request_counts.errored == 0

    results = list(client.messages.batches.results(batch.id))
    ids = [r.custom_id for r in results]
    assert len(ids) == n and set(ids) == {f"k-{i}" for i in range(n)}
    assert all(r.result.type == "succeeded" for r in results)
    assert dict(query(db, "SELECT state, count(*) FROM requests GROUP BY state")) == {2: n}
    [(reran,)] = query(db, "SELECT count(*) FROM requests WHERE attempts > 1")
    assert reran > 0, "no request was caught in flight by a kill"


def _send_partial(port: int, body: bytes, upto: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (
        "POST /v1/messages/batches HTTP/1.1\r\nHost: x\r\nanthropic-version: 2023-06-01\r\n"
        f"x-api-key: {ADMIN_KEY}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body[:upto])
    return sock


def test_api_killed_during_uploads_never_shows_a_partial_batch(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    db = new_database(tmp_path, "uploads")
    n = 20_000
    body = batch_body(n)
    outcomes = []
    # Killed with half the body read, and at moments after the whole body was sent
    # (while the server decodes it and writes the batch).
    for upto, wait in [(len(body) // 2, 0.1), *((len(body), w) for w in (0.0, 0.05, 0.15, 0.3))]:
        api = start_server("--no-worker", database=db)
        sock = _send_partial(api.port, body, upto)
        time.sleep(wait)
        api.kill()
        sock.close()
        api.stop()
        outcomes.append(wait)

    api = start_server("--no-worker", database=db)
    client = client_for(api)
    listed = list(client.messages.batches.list(limit=100))
    for b in listed:
        # A batch is there whole, or not at all.
        assert b.request_counts.processing == n
        assert query(db, "SELECT count(*) FROM requests r JOIN batches b ON b.seq = r.batch_seq"
                         " WHERE b.id = ?", b.id) == [(n,)]  # fmt: skip
    print(f"{len(listed)} of 4 fully sent uploads were committed before the kill")
    assert len(listed) <= 4
    [(orphans,)] = query(
        db, "SELECT count(*) FROM requests WHERE batch_seq NOT IN (SELECT seq FROM batches)"
    )
    assert orphans == 0
    # And the server takes new work as before.
    made = client.messages.batches.create(requests=make_requests(3, "after"))  # type: ignore[arg-type]
    assert client.messages.batches.retrieve(made.id).request_counts.processing == 3
