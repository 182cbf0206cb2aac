"""The dashboard's store reads, on SQLite, PostgreSQL and in memory."""

from __future__ import annotations

import msgspec
import pytest

from batchyard.clock import ManualClock
from batchyard.store.layout import RequestState
from batchyard.store.port import Store
from batchyard.store.records import BatchRecord, NewBatch, OpenAIBatchRecord, Outcome

pytestmark = pytest.mark.anyio
HOUR = 3600.0
IDS = ["a_1", "a%2", "ab3", "B_4", "c5", "c6", "c7"]


def new_batch(
    clock: ManualClock, name: str, workspace: str = "ws", dialect: str = "anthropic"
) -> NewBatch:
    now = clock.now()
    return NewBatch(
        f"msgbatch_{name}", workspace, now, now + 24 * HOUR, now + 48 * HOUR, dialect=dialect
    )


def line(custom_id: str, kind: str) -> bytes:
    return b'{"custom_id":"%s","result":{"type":"%s"}}' % (custom_id.encode(), kind.encode())


async def finished_batch(store: Store, clock: ManualClock) -> BatchRecord:
    """IDS in order: c5 errored at t=10, the rest up to c6 succeeded at t=0, c7 canceled."""
    await store.create_batch(new_batch(clock, "v"), IDS, [b"{}"] * len(IDS))
    claimed = await store.claim_requests("w", clock.now(), 60, 6)
    by_id = {c.custom_id: c for c in claimed}
    ok = [
        Outcome(by_id[i].key, 1, RequestState.SUCCEEDED, line(i, "succeeded"))
        for i in IDS[:6]
        if i != "c5"
    ]
    await store.record_outcomes("w", ok, clock.now())
    clock.advance(10)
    bad = Outcome(by_id["c5"].key, 1, RequestState.ERRORED, line("c5", "errored"))
    await store.record_outcomes("w", [bad], clock.now())
    batch = await store.cancel_batch("ws", "msgbatch_v", clock.now())
    assert batch is not None and batch.processing_status == "ended"
    return batch


async def test_results_errors_first_then_submission_order(store: Store) -> None:
    batch = await finished_batch(store, ManualClock())
    rows, matching = await store.views.results(batch)
    assert matching == 7
    assert [(r.custom_id, r.kind) for r in rows] == [
        ("c5", "errored"),
        ("a_1", "succeeded"),
        ("a%2", "succeeded"),
        ("ab3", "succeeded"),
        ("B_4", "succeeded"),
        ("c6", "succeeded"),
        ("c7", "canceled"),
    ]
    # Every row's line is the results line the results endpoint would serve.
    for r in rows:
        decoded = msgspec.json.decode(r.line)
        assert decoded == {"custom_id": r.custom_id, "result": {"type": r.kind}}
    page, matching = await store.views.results(batch, offset=2, limit=3)
    assert [r.custom_id for r in page] == ["a%2", "ab3", "B_4"] and matching == 7


async def test_search_is_a_literal_case_insensitive_substring(store: Store) -> None:
    batch = await finished_batch(store, ManualClock())

    async def found(search: str, kind: str | None = None) -> list[str]:
        rows, matching = await store.views.results(batch, search=search, kind=kind)
        assert matching == len(rows)
        return [r.custom_id for r in rows]

    assert await found("_") == ["a_1", "B_4"]  # `_` is not a wildcard
    assert await found("%") == ["a%2"]
    assert await found("b_") == ["B_4"]
    assert await found("A") == ["a_1", "a%2", "ab3"]
    assert await found("c") == ["c5", "c6", "c7"]
    assert await found("c", "succeeded") == ["c6"]
    assert await found("", "canceled") == ["c7"]
    assert await found("zzz") == []


async def test_one_result(store: Store) -> None:
    clock = ManualClock()
    batch = await finished_batch(store, clock)
    found = await store.views.result(batch, "c5")
    assert found is not None and found.kind == "errored" and found.line == line("c5", "errored")
    assert await store.views.result(batch, "nope") is None

    await store.create_batch(new_batch(clock, "q"), ["x"], [b"{}"])
    queued = await store.get_batch("ws", "msgbatch_q")
    assert queued is not None
    assert await store.views.result(queued, "x") is None  # not finished


async def test_batches_of_both_dialects_newest_first_in_one_workspace(store: Store) -> None:
    clock = ManualClock()
    for name in ("one", "two", "three"):
        await store.create_batch(new_batch(clock, name), ["x"], [b"{}"])
        clock.advance(1)
    await store.create_batch(new_batch(clock, "oai", dialect="openai"), ["x"], [b"{}"])
    await store.openai_batches.create(
        OpenAIBatchRecord(
            "batch_abc", "ws", "msgbatch_oai", "/v1/chat/completions", "file_1", "24h",
            None, None, clock.now(),
        )
    )  # fmt: skip
    await store.create_batch(new_batch(clock, "elsewhere", "other"), ["x"], [b"{}"])

    rows, more = await store.views.batches("ws", 3)
    assert [(r.batch.id, r.dialect, r.openai_id) for r in rows] == [
        ("msgbatch_oai", "openai", "batch_abc"),
        ("msgbatch_three", "anthropic", None),
        ("msgbatch_two", "anthropic", None),
    ]
    assert more
    rest, more = await store.views.batches("ws", 3, before_seq=rows[-1].batch.seq)
    assert [r.batch.id for r in rest] == ["msgbatch_one"] and not more

    await store.cancel_batch("ws", "msgbatch_two", clock.now())  # nothing in flight: ends now
    running, _ = await store.views.batches("ws", 10, status="running")
    ended, _ = await store.views.batches("ws", 10, status="ended")
    assert [r.batch.id for r in running] == ["msgbatch_oai", "msgbatch_three", "msgbatch_one"]
    assert [r.batch.id for r in ended] == ["msgbatch_two"]

    one = await store.views.batch("ws", "msgbatch_oai")
    assert one is not None and one.openai_id == "batch_abc"
    assert await store.views.batch("other", "msgbatch_oai") is None


async def test_pages_of_a_running_batch_add_up_to_errors_first(store: Store) -> None:
    clock = ManualClock()
    ids = [f"r{i:02d}" for i in range(20)]
    await store.create_batch(new_batch(clock, "run"), ids, [b"{}"] * len(ids))
    claimed = await store.claim_requests("w", clock.now(), 60, 15)  # r15..r19 stay queued
    outcomes = [
        Outcome(
            c.key,
            1,
            RequestState.ERRORED if i % 4 == 1 else RequestState.SUCCEEDED,
            line(c.custom_id, "errored" if i % 4 == 1 else "succeeded"),
        )
        for i, c in enumerate(claimed)
    ]
    await store.record_outcomes("w", outcomes, clock.now())
    batch = await store.get_batch("ws", "msgbatch_run")
    assert batch is not None and batch.processing_status == "in_progress"

    errored = [f"r{i:02d}" for i in range(15) if i % 4 == 1]
    expected = errored + [f"r{i:02d}" for i in range(15) if i % 4 != 1]
    for size in (1, 2, 3, 4, 50):
        seen: list[str] = []
        for offset in range(0, 20, size):
            rows, matching = await store.views.results(batch, offset=offset, limit=size)
            assert matching == 15
            seen += [r.custom_id for r in rows]
        assert seen == expected, size
    rows, matching = await store.views.results(batch, kind="errored", offset=1, limit=2)
    assert [r.custom_id for r in rows] == errored[1:3] and matching == len(errored)


async def test_timeline_counts_finishes_per_interval(store: Store) -> None:
    clock = ManualClock()
    start = clock.now()
    ids = [f"t{i}" for i in range(6)]
    await store.create_batch(new_batch(clock, "tl"), ids, [b"{}"] * len(ids))
    claimed = await store.claim_requests("w", clock.now(), 600, 6)
    plan = [  # (seconds after start, outcome) for each claimed request
        (0.5, RequestState.SUCCEEDED),
        (1.0, RequestState.ERRORED),
        (1.999, RequestState.SUCCEEDED),
        (2.0, RequestState.SUCCEEDED),
        (7.5, RequestState.ERRORED),
        (99.0, RequestState.SUCCEEDED),  # past the last bucket: left out
    ]
    for c, (at, state) in zip(claimed, plan, strict=True):
        o = Outcome(c.key, 1, state, line(c.custom_id, "x"))
        await store.record_outcomes("w", [o], start + at)
    batch = await store.get_batch("ws", "msgbatch_tl")
    assert batch is not None
    assert await store.views.timeline(batch, start, 2.0, 5) == [
        (2, 1),  # [0, 2): 0.5, 1.0 (errored), 1.999
        (1, 0),  # [2, 4): 2.0
        (0, 0),
        (0, 1),  # [6, 8): 7.5 (errored)
        (0, 0),
    ]
    assert await store.views.timeline(batch, start + 1.0, 1.0, 2) == [(1, 1), (1, 0)]


async def test_open_batches_of_every_workspace_oldest_first(store: Store) -> None:
    clock = ManualClock()
    await store.create_batch(new_batch(clock, "o1"), ["x", "y"], [b"{}"] * 2)
    await store.create_batch(new_batch(clock, "o2", "other"), ["x"], [b"{}"])
    await store.create_batch(new_batch(clock, "o3"), ["x"], [b"{}"])
    await store.cancel_batch("ws", "msgbatch_o3", clock.now())  # nothing in flight: ended
    assert len(await store.claim_requests("w", clock.now(), 60, 10)) == 3
    await store.create_batch(new_batch(clock, "o4"), ["x"], [b"{}"])
    await store.cancel_batch("ws", "msgbatch_o4", clock.now())
    opened = await store.views.open_batches()
    assert [b.id for b in opened] == ["msgbatch_o1", "msgbatch_o2"]
    # Records as get_batch reads them (their counts move with the requests).
    assert opened[0] == await store.get_batch("ws", "msgbatch_o1")
    assert [b.id for b in await store.views.open_batches(limit=1)] == ["msgbatch_o1"]
    # A canceling batch (a request still in flight) is open until it ends.
    held = await store.cancel_batch("ws", "msgbatch_o1", clock.now())
    assert held is not None and held.processing_status == "canceling"
    assert [b.id for b in await store.views.open_batches()] == ["msgbatch_o1", "msgbatch_o2"]
