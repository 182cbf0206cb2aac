"""The store contract, on SQLite, PostgreSQL and in memory, with a manual clock (no sleeping)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import cast

import msgspec
import pytest

from batchyard.clock import ManualClock
from batchyard.store import migrations
from batchyard.store.layout import RequestState
from batchyard.store.port import Store
from batchyard.store.records import BatchRecord, NewBatch, Outcome, UnknownCursor
from batchyard.store.sql_runner import SqlRunner
from batchyard.store.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio
HOUR = 3600.0


def new_batch(clock: ManualClock, name: str = "b", expiry: float = 24 * HOUR) -> NewBatch:
    now = clock.now()
    return NewBatch(f"msgbatch_{name}", "ws", now, now + expiry, now + 29 * 24 * HOUR)


def reqs(n: int) -> tuple[list[str], list[bytes]]:
    return [f"r{i}" for i in range(n)], [b'{"i":%d}' % i for i in range(n)]


def done(key: int, attempts: int, state: RequestState = RequestState.SUCCEEDED) -> Outcome:
    return Outcome(key, attempts, state, b'{"custom_id":"r","result":{"type":"x"}}')


async def all_lines(store: Store, batch_id: str) -> list[dict[str, object]]:
    batch = await store.get_batch("ws", batch_id)
    assert batch is not None
    chunks = [c async for c in store.result_lines(batch, page_size=3)]
    text = b"".join(chunks)
    assert text.endswith(b"\n") and b"\n\n" not in text
    return [msgspec.json.decode(line) for line in text.splitlines()]


async def test_create_is_visible_and_counts_start_processing(store: Store) -> None:
    clock = ManualClock()
    created = await store.create_batch(new_batch(clock), *reqs(5))
    got = await store.get_batch("ws", "msgbatch_b")
    assert got == created
    assert (got.total, got.processing, got.processing_status) == (5, 5, "in_progress")
    assert await store.get_batch("other-workspace", "msgbatch_b") is None


async def test_migrations_are_recorded_and_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    for _ in range(2):
        s = SQLiteStore(path)
        await s.open()
        await s.close()
    versions = sqlite3.connect(path).execute("SELECT version FROM schema_migrations").fetchall()
    assert versions == [(m.version,) for m in migrations.load("sqlite")]
    assert len(versions) >= 4
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


async def test_claim_record_and_end(store: Store) -> None:
    clock = ManualClock()
    await store.create_batch(new_batch(clock), *reqs(5))
    first = await store.claim_requests("w1", clock.now(), 60, 3)
    assert [c.custom_id for c in first] == ["r0", "r1", "r2"]
    assert all(c.attempts == 1 for c in first)
    assert first[0].params == b'{"i":0}'
    rest = await store.claim_requests("w1", clock.now(), 60, 10)
    assert [c.custom_id for c in rest] == ["r3", "r4"]
    assert await store.claim_requests("w1", clock.now(), 60, 10) == []

    report = await store.record_outcomes(
        "w1", [done(c.key, 1) for c in first] + [done(rest[0].key, 1, RequestState.ERRORED)], 1.0
    )
    assert report.recorded == 4 and report.ended_batches == []
    b = await store.get_batch("ws", "msgbatch_b")
    assert b is not None and (b.processing, b.succeeded, b.errored) == (1, 3, 1)

    report = await store.record_outcomes("w1", [done(rest[1].key, 1)], 2.0)
    assert report.ended_batches == ["msgbatch_b"]
    b = await store.get_batch("ws", "msgbatch_b")
    assert b is not None and b.processing_status == "ended" and b.ended_at == 2.0


async def test_outcome_of_a_lost_lease_is_not_recorded_twice(store: Store) -> None:
    clock = ManualClock()
    await store.create_batch(new_batch(clock), *reqs(1))
    [slow] = await store.claim_requests("slow", clock.now(), 10, 1)
    clock.advance(11)
    report = await store.housekeeping(clock.now())
    assert report.reclaimed == 1
    [fast] = await store.claim_requests("fast", clock.now(), 10, 1)
    assert fast.key == slow.key and fast.attempts == 2

    late = await store.record_outcomes("slow", [done(slow.key, slow.attempts)], clock.now())
    assert (late.recorded, late.stale, late.applied) == (0, 1, [])
    outcome = done(fast.key, fast.attempts)
    ok = await store.record_outcomes("fast", [outcome], clock.now())
    assert ok.recorded == 1 and ok.ended_batches == ["msgbatch_b"] and ok.applied == [outcome]
    again = await store.record_outcomes("fast", [done(fast.key, fast.attempts)], clock.now())
    assert again.recorded == 0
    b = await store.get_batch("ws", "msgbatch_b")
    assert b is not None and (b.succeeded, b.processing) == (1, 0)


async def test_heartbeat_keeps_the_lease(store: Store) -> None:
    clock = ManualClock()
    await store.create_batch(new_batch(clock), *reqs(1))
    [c] = await store.claim_requests("w", clock.now(), 10, 1)
    clock.advance(8)
    await store.extend_leases("w", [c.key], clock.now() + 10)
    clock.advance(8)
    assert (await store.housekeeping(clock.now())).reclaimed == 0


async def test_retry_waits_until_available(store: Store) -> None:
    clock = ManualClock()
    await store.create_batch(new_batch(clock), *reqs(1))
    [c] = await store.claim_requests("w", clock.now(), 60, 1)
    retry = Outcome(c.key, c.attempts, RequestState.QUEUED, available_at=clock.now() + 5)
    assert (await store.record_outcomes("w", [retry], clock.now())).recorded == 1
    assert await store.claim_requests("w", clock.now(), 60, 1) == []
    clock.advance(5)
    [again] = await store.claim_requests("w", clock.now(), 60, 1)
    assert again.attempts == 2


async def test_claims_are_shared_between_batches(store: Store) -> None:
    clock = ManualClock()
    await store.create_batch(new_batch(clock, "big"), *reqs(1000))
    await store.create_batch(new_batch(clock, "small"), *reqs(4))
    claimed = await store.claim_requests("w", clock.now(), 60, 8)
    by_batch = [c.batch_seq for c in claimed]
    assert len(claimed) == 8
    assert by_batch.count(2) == 4  # the small batch got its share at once


async def test_cancel_marks_queued_canceled_and_claimed_finish(store: Store) -> None:
    clock = ManualClock()
    await store.create_batch(new_batch(clock), *reqs(4))
    claimed = await store.claim_requests("w", clock.now(), 60, 2)
    b = await store.cancel_batch("ws", "msgbatch_b", clock.now())
    assert b is not None and b.processing_status == "canceling"
    assert (b.processing, b.canceled) == (2, 2)
    assert await store.claim_requests("w", clock.now(), 60, 10) == []

    retry = Outcome(claimed[1].key, 1, RequestState.QUEUED, available_at=0)
    report = await store.record_outcomes("w", [done(claimed[0].key, 1), retry], clock.now())
    assert report.ended_batches == ["msgbatch_b"]
    b = await store.get_batch("ws", "msgbatch_b")
    assert b is not None and b.processing_status == "ended"
    assert (b.succeeded, b.canceled, b.processing) == (1, 3, 0)
    assert await store.cancel_batch("ws", "msgbatch_b", clock.now()) == b
    types = sorted(str(line["result"]["type"]) for line in await all_lines(store, "msgbatch_b"))  # type: ignore[index]
    assert types == ["canceled", "canceled", "canceled", "x"]


async def test_cancel_with_nothing_in_flight_ends_at_once(store: Store) -> None:
    clock = ManualClock()
    await store.create_batch(new_batch(clock), *reqs(3))
    b = await store.cancel_batch("ws", "msgbatch_b", clock.now())
    assert b is not None and b.processing_status == "ended" and b.canceled == 3


async def test_expiry_expires_queued_and_claimed(store: Store) -> None:
    clock = ManualClock()
    await store.create_batch(new_batch(clock, expiry=HOUR), *reqs(4))
    [c] = await store.claim_requests("w", clock.now(), 7200, 1)
    clock.advance(HOUR - 1)
    assert (await store.housekeeping(clock.now())).expired_requests == 0
    clock.advance(1)
    assert await store.claim_requests("w", clock.now(), 60, 10) == []  # expired: no new claims
    report = await store.housekeeping(clock.now())
    assert report.expired_requests == 4 and report.ended_batches == ["msgbatch_b"]
    late = await store.record_outcomes("w", [done(c.key, 1)], clock.now())
    assert late.recorded == 0  # an answer after expiry does not change the ended batch
    b = await store.get_batch("ws", "msgbatch_b")
    assert b is not None and (b.expired, b.processing, b.ended_at) == (4, 0, clock.now())
    lines = await all_lines(store, "msgbatch_b")
    assert [line["result"] for line in lines] == [{"type": "expired"}] * 4


async def archived_batch(store: Store) -> BatchRecord:
    """A batch of two succeeded requests, kept until its retention ran out."""
    clock = ManualClock()
    await store.create_batch(new_batch(clock), *reqs(2))
    claimed = await store.claim_requests("w", clock.now(), 60, 2)
    await store.record_outcomes("w", [done(c.key, 1) for c in claimed], clock.now())
    clock.advance(29 * 24 * HOUR - 1)
    assert (await store.housekeeping(clock.now())).archived_batches == []
    clock.advance(1)
    assert (await store.housekeeping(clock.now())).archived_batches == ["msgbatch_b"]
    b = await store.get_batch("ws", "msgbatch_b")
    assert b is not None and b.archived_at == clock.now() and b.succeeded == 2
    return b


async def test_retention_archives_and_deletes_results(store: Store) -> None:
    b = await archived_batch(store)
    assert [chunk async for chunk in store.result_lines(b)] == []
    assert await store.views.results(b) == ([], 0)
    assert await store.views.result(b, "r0") is None


async def test_retention_deletes_the_request_rows(sql_store: Store) -> None:
    await archived_batch(sql_store)
    assert await cast(SqlRunner, sql_store).fetchone("SELECT count(*) FROM requests") == (0,)


async def test_delete_only_when_ended(store: Store) -> None:
    clock = ManualClock()
    await store.create_batch(new_batch(clock), *reqs(2))
    record, deleted = await store.delete_batch("ws", "msgbatch_b")
    assert record is not None and not deleted
    await store.cancel_batch("ws", "msgbatch_b", clock.now())
    record, deleted = await store.delete_batch("ws", "msgbatch_b")
    assert deleted
    assert await store.get_batch("ws", "msgbatch_b") is None
    assert await store.delete_batch("ws", "msgbatch_b") == (None, False)


async def test_list_pages_and_cursors(store: Store) -> None:
    clock = ManualClock()
    for i in range(5):
        await store.create_batch(new_batch(clock, str(i)), *reqs(1))
    page, more = await store.list_batches("ws", 2, None, None)
    assert [b.id for b in page] == ["msgbatch_4", "msgbatch_3"] and more
    page, more = await store.list_batches("ws", 2, "msgbatch_3", None)
    assert [b.id for b in page] == ["msgbatch_2", "msgbatch_1"] and more
    page, more = await store.list_batches("ws", 2, None, "msgbatch_1")
    assert [b.id for b in page] == ["msgbatch_3", "msgbatch_2"] and more
    page, more = await store.list_batches("ws", 5, None, "msgbatch_2")
    assert [b.id for b in page] == ["msgbatch_4", "msgbatch_3"] and not more
    with pytest.raises(UnknownCursor):
        await store.list_batches("ws", 2, "msgbatch_nope", None)
    with pytest.raises(UnknownCursor):
        await store.list_batches("other", 2, "msgbatch_1", None)
