"""Prefix-grouped claims: the pure rotation, then the contract on every store."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from batchyard.clock import ManualClock
from batchyard.store.claims import URGENT_SECONDS, Claimable, Grouping
from batchyard.store.port import Store
from batchyard.store.records import ClaimedRequest, NewBatch
from batchyard.store.sqlite import SQLiteStore, SqliteTx

pytestmark = pytest.mark.anyio
DAY = 86400.0


def claimable(seq: int, ws: str, prefix: int | None, expires_at: float = DAY) -> Claimable:
    return Claimable(seq, ws, prefix, expires_at)


def first_orders(
    g: Grouping, batches: list[Claimable], took: list[int], limit: int = 8
) -> list[list[list[int]]]:
    """The orders one claim of `limit` is offered, as the stores walk them: `took[i]`
    claimed from the i-th, and no more asked for once the claim is full."""
    orders, total = [], 0
    for order, n in zip(g.orders(batches, 0.0), took, strict=False):
        orders.append(order)
        g.took(n)
        total += n
        if total >= limit:
            break
    return orders


# --- the pure rules -------------------------------------------------------------


def test_a_group_keeps_its_run_then_the_rotation_moves_on() -> None:
    batches = [claimable(1, "a", 10), claimable(2, "b", 20)]
    g = Grouping(run=16)
    assert first_orders(g, batches, [8]) == [[[1]]]  # a's turn first (workspaces by name)
    assert first_orders(g, batches, [8]) == [[[1]]]  # still its run: 16 not reached
    assert first_orders(g, batches, [8]) == [[[2]]]  # run over and b waits: b's turn
    assert first_orders(g, batches, [8]) == [[[2]]]
    assert first_orders(g, batches, [8]) == [[[1]]]


def test_batches_that_start_alike_run_together_across_workspaces() -> None:
    batches = [claimable(1, "a", 10), claimable(2, "b", 20), claimable(3, "c", 10)]
    g = Grouping(run=100)
    [order] = first_orders(g, batches, [5])
    assert sorted(seq for seqs in order for seq in seqs) == [1, 3]


def test_a_group_that_runs_dry_hands_the_claim_on() -> None:
    batches = [claimable(1, "a", 10), claimable(2, "a", 20), claimable(3, "b", 30)]
    g = Grouping(run=100)
    orders = first_orders(g, batches, [2, 3, 4], limit=9)
    assert len(orders) == 3 and sorted(o[0][0] for o in orders) == [1, 2, 3]
    assert g.served == 4  # the group that filled the claim is current now


def test_the_only_group_keeps_running_past_its_run() -> None:
    g = Grouping(run=4)
    for _ in range(3):
        assert first_orders(g, [claimable(1, "a", 10)], [8]) == [[[1]]]


def test_a_workspace_with_many_groups_gets_no_more_turns_than_one_with_one() -> None:
    batches = [claimable(i, "a", 100 + i) for i in range(1, 6)] + [claimable(9, "b", 9)]
    g = Grouping(run=1)
    turns: Counter[str] = Counter()
    for _ in range(20):
        [order] = first_orders(g, batches, [1], limit=1)
        turns["b" if order == [[9]] else "a"] += 1
    assert turns == {"a": 10, "b": 10}


def test_three_workspaces_take_turns_in_order() -> None:
    batches = [claimable(1, "a", 1), claimable(2, "b", 2), claimable(3, "c", 3)]
    g = Grouping(run=1)
    picked = [first_orders(g, batches, [1], limit=1)[0][0][0] for _ in range(6)]
    assert picked == [1, 2, 3, 1, 2, 3]


def test_every_batch_of_a_workspace_gets_its_turn() -> None:
    """Two workspaces of two batches each: per-workspace turns, so no batch is skipped."""
    batches = [claimable(1, "a", 1), claimable(2, "a", 2), claimable(3, "b", 3)]
    batches.append(claimable(4, "b", 4))
    g = Grouping(run=1)
    served = Counter(first_orders(g, batches, [1], limit=1)[0][0][0] for _ in range(16))
    assert served == {1: 4, 2: 4, 3: 4, 4: 4}


def test_the_batch_nearest_its_deadline_goes_first_within_its_workspace() -> None:
    soon = URGENT_SECONDS / 2
    batches = [claimable(1, "a", 1), claimable(2, "a", 2, expires_at=soon)]
    batches += [claimable(3, "a", 3, expires_at=soon + 1), claimable(4, "b", 4)]
    g = Grouping(run=1)
    picked = [first_orders(g, batches, [1], limit=1)[0][0][0] for _ in range(4)]
    assert picked == [2, 4, 2, 4]  # a's turns go to the most urgent; b keeps its turns


def test_batches_without_a_prefix_are_groups_of_their_own() -> None:
    batches = [claimable(1, "a", None), claimable(2, "a", None)]
    g = Grouping(run=100)
    assert first_orders(g, batches, [1], limit=1) == [[[1]]]


# --- on every store -----------------------------------------------------------


def batch(clock: ManualClock, name: str, ws: str, prefix: int | None) -> NewBatch:
    now = clock.now()
    return NewBatch(f"msgbatch_{name}", ws, now, now + DAY, now + 29 * DAY, prefix=prefix)


async def fill(store: Store, clock: ManualClock, name: str, ws: str, prefix: int, n: int) -> int:
    record = await store.create_batch(
        batch(clock, name, ws, prefix), [f"r{i}" for i in range(n)], [b"{}"] * n
    )
    return record.seq


def seqs(claimed: list[ClaimedRequest]) -> Counter[int]:
    return Counter(c.batch_seq for c in claimed)


async def test_grouped_claims_take_one_group_at_a_time(store: Store) -> None:
    clock = ManualClock()
    a1 = await fill(store, clock, "a1", "ws_a", 1, 40)
    a2 = await fill(store, clock, "a2", "ws_a", 2, 40)
    b3 = await fill(store, clock, "b3", "ws_b", 3, 40)
    b1 = await fill(store, clock, "b1", "ws_b", 1, 40)  # starts like a1
    g = Grouping(run=16)
    rounds = [seqs(await store.claim_requests("w", clock.now(), 60, 8, g)) for _ in range(12)]
    # Each claim keeps to one group; a1 and b1 share prefix 1, so they run together.
    groups = [frozenset(r) for r in rounds]
    assert all(g_ in ({a1, b1}, {a2}, {b3}) for g_ in groups), groups
    # Runs of 16 requests (two claims), then the next group in fair rotation.
    assert groups[0] == groups[1] and groups[1] != groups[2] and groups[2] == groups[3]
    # Over the window every group was served, workspace b included.
    served = sum(rounds, Counter[int]())
    assert set(served) == {a1, a2, b3, b1}
    assert sum(served.values()) == 96


async def test_without_grouping_a_claim_is_shared_out_as_before(store: Store) -> None:
    clock = ManualClock()
    for name, prefix in (("a1", 1), ("a2", 2)):
        await fill(store, clock, name, "ws", prefix, 40)
    assert sorted(seqs(await store.claim_requests("w", clock.now(), 60, 8)).values()) == [4, 4]


async def test_a_grouped_claim_fills_up_from_the_next_group(store: Store) -> None:
    clock = ManualClock()
    small = await fill(store, clock, "small", "ws", 1, 3)
    big = await fill(store, clock, "big", "ws", 2, 40)
    g = Grouping(run=100)
    assert seqs(await store.claim_requests("w", clock.now(), 60, 8, g)) == {small: 3, big: 5}
    assert seqs(await store.claim_requests("w", clock.now(), 60, 8, g)) == {big: 8}


def test_a_group_past_its_run_still_fills_what_the_others_leave() -> None:
    batches = [claimable(1, "a", 10), claimable(2, "b", 20)]
    g = Grouping(run=8)
    first_orders(g, batches, [8])  # a's run is over
    # b gives 2 only: a comes back last in the same claim, rather than the claim coming short
    assert first_orders(g, batches, [2, 6]) == [[[2]], [[1]]]
    assert g.group == ("prefix", 10)


def test_a_copy_moves_nothing_until_adopted() -> None:
    batches = [claimable(1, "a", 10), claimable(2, "b", 20)]
    g = Grouping(run=8)
    trial = g.copy()
    first_orders(trial, batches, [8])
    assert (g.group, g.served, g._last_space) == (None, 0, None)
    g.adopt(trial)
    assert (g.group, g.served, g._last_space) == (("prefix", 10), 8, "a")


async def test_batches_with_nothing_claimable_take_no_turn(store: Store) -> None:
    """Another worker holds all of b: a's group keeps the claim past its run, and an
    urgent batch with nothing queued does not take its workspace's turn."""
    clock = ManualClock()
    a = await fill(store, clock, "a", "ws_a", 1, 40)
    b = await fill(store, clock, "b", "ws_b", 2, 4)
    assert seqs(await store.claim_requests("other", clock.now(), 60, 8)) == {a: 4, b: 4}
    g = Grouping(run=8)
    for _ in range(4):  # runs of 8 end, but b has nothing to claim: a keeps every claim
        assert seqs(await store.claim_requests("w", clock.now(), 60, 8, g)) == {a: 8}
    assert seqs(await store.claim_requests("w", clock.now(), 60, 8, g)) == {a: 4}
    assert await store.claim_requests("w", clock.now(), 60, 8, g) == []


async def test_an_urgent_batch_with_nothing_queued_gives_its_turn_away(store: Store) -> None:
    clock = ManualClock()
    now = clock.now()
    urgent = NewBatch("msgbatch_u", "ws", now, now + URGENT_SECONDS / 2, now + DAY, prefix=1)
    u = (await store.create_batch(urgent, ["r0", "r1"], [b"{}"] * 2)).seq
    other = await fill(store, clock, "o", "ws", 2, 40)
    g = Grouping(run=2)
    assert seqs(await store.claim_requests("w", clock.now(), 60, 2, g)) == {u: 2}
    for _ in range(3):  # the urgent one is all in flight: the workspace's turn goes on
        assert seqs(await store.claim_requests("w", clock.now(), 60, 2, g)) == {other: 2}


async def test_a_claim_that_rolls_back_leaves_the_rotation_as_it_was(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite")
    await store.open()
    clock = ManualClock()
    await fill(store, clock, "a", "ws_a", 1, 40)
    await fill(store, clock, "b", "ws_b", 2, 40)
    g = Grouping(run=8)

    async def broken(*args: object) -> list[ClaimedRequest]:
        raise RuntimeError("the transaction fails")

    original = SqliteTx.claim_pass
    SqliteTx.claim_pass = broken  # type: ignore[method-assign, assignment]
    try:
        with pytest.raises(RuntimeError):
            await store.claim_requests("w", clock.now(), 60, 8, g)
    finally:
        SqliteTx.claim_pass = original  # type: ignore[method-assign]
    assert (g.group, g.served, g._last_space) == (None, 0, None)
    assert len(await store.claim_requests("w", clock.now(), 60, 8, g)) == 8
    assert g.group == ("prefix", 1)
    await store.close()
