"""The batch lifecycle, written once for both SQL stores: create (with the workspace's
queue limit), cancel, delete, claim (fair shares), record outcomes (under the lease
guard, counters moved in the same transaction, usage counted), extend leases, and
housekeeping (lapsed leases, expiry, cancel sweeps, retention).

Each function runs inside one write transaction, through a `Tx`: the SQLite store
drives these coroutines in its writer thread (its Tx never suspends), the PostgreSQL
store awaits them on a pooled connection. A Tx adds what the databases do
differently: locks, bulk inserts, claim passes and guarded bulk updates.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Protocol, cast

from typing_extensions import Buffer

from batchyard.store import queries as q
from batchyard.store.claims import Claimable, Grouping, claim_in_turn
from batchyard.store.layout import COUNTER, KEY_BITS, RequestState, batch_of, key_range
from batchyard.store.openai_batches_sql import SqlOpenAIBatches
from batchyard.store.records import (
    BatchRecord,
    ClaimedRequest,
    HousekeepingReport,
    NewBatch,
    OpenAIBatchRecord,
    Outcome,
    QueueFull,
    RecordReport,
    UsageRow,
    created_record,
)
from batchyard.store.sql_runner import Row, batch_record, usage_params
from batchyard.store.tallies import usage_rows, usage_sums


class Tx(Protocol):
    """One write transaction, as the lifecycle sees it (`?` placeholders)."""

    locks_rows: bool
    """Whether `lock_batch` and SELECT … FOR UPDATE matter (not where writers are serial)."""

    async def fetchone(self, sql: str, *params: object) -> Row | None: ...

    async def fetchall(self, sql: str, *params: object) -> list[Row]: ...

    async def execute(self, sql: str, *params: object) -> int:
        """Run one statement; return how many rows it changed."""

    async def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None: ...

    async def lock_workspace(self, workspace_id: str) -> None:
        """Hold creates in this workspace off until the transaction ends."""

    async def try_lock_housekeeping(self) -> bool:
        """Whether this transaction may do housekeeping (one worker at a time)."""

    async def insert_requests(
        self, seq: int, custom_ids: Sequence[str], params: Sequence[Buffer]
    ) -> None: ...

    async def claim_pass(
        self,
        wants: list[tuple[int, int]],
        worker_id: str,
        lease_until: float,
        now: float,
        owners: dict[int, tuple[str, str]],
    ) -> list[ClaimedRequest]:
        """Lease up to `want` queued, available requests of each batch (skipping rows
        another transaction holds, where that can happen); `owners`: each batch's
        workspace and dialect."""

    async def finish_leased(
        self, finals: Sequence[Outcome], worker_id: str, now: float
    ) -> list[Outcome]:
        """Write these final outcomes where the worker still holds the lease they were
        claimed with (same worker, same attempts); return those written."""

    async def requeue_leased(self, retries: Sequence[Outcome], worker_id: str) -> list[Outcome]:
        """Send these requests back to the queue (no earlier than their `available_at`)
        where the worker still holds the lease; return those requeued."""


async def get_batch(
    tx: Tx, workspace_id: str, batch_id: str, *, lock: bool = False
) -> BatchRecord | None:
    sql = q.GET_BATCH + (" FOR UPDATE" if lock and tx.locks_rows else "")
    row = await tx.fetchone(sql, batch_id, workspace_id)
    return batch_record(row) if row is not None else None


async def create_batch(
    tx: Tx,
    batch: NewBatch,
    custom_ids: Sequence[str],
    params: Sequence[Buffer],
    queued_limit: int | None,
    openai: OpenAIBatchRecord | None,
) -> BatchRecord:
    n = len(custom_ids)
    assert len(params) == n
    if queued_limit is not None:
        # One create at a time per workspace, so two cannot both pass the check.
        await tx.lock_workspace(batch.workspace_id)
        row = await tx.fetchone(q.QUEUED_IN_WORKSPACE, batch.workspace_id)
        queued = int(row[0]) if row else 0  # type: ignore[call-overload]
        if queued + n > queued_limit:
            raise QueueFull(queued_limit, queued)
    row = await tx.fetchone(
        q.INSERT_BATCH,
        batch.id,
        batch.workspace_id,
        batch.api_key_id,
        batch.dialect,
        batch.created_at,
        batch.expires_at,
        batch.archive_at,
        n,
        n,
        batch.webhook_url,
        batch.prefix,
    )
    assert row is not None
    seq = int(row[0])  # type: ignore[call-overload]
    await tx.insert_requests(seq, custom_ids, params)
    if openai is not None:
        sql, values = SqlOpenAIBatches.insert(openai)
        await tx.execute(sql, *values)
    return created_record(seq, batch, n)


async def cancel_batch(tx: Tx, workspace_id: str, batch_id: str, now: float) -> BatchRecord | None:
    """Mark the batch canceling and its queued requests canceled (ended if none is claimed)."""
    batch = await get_batch(tx, workspace_id, batch_id, lock=True)
    if batch is None or batch.processing_status != "in_progress":
        return batch
    await tx.execute(q.MARK_CANCELING, now, batch.seq)
    await finish_unclaimed(tx, batch.seq, RequestState.CANCELED, now)
    await end_if_done(tx, [batch.seq], now)
    return await get_batch(tx, workspace_id, batch_id)


async def delete_batch(tx: Tx, workspace_id: str, batch_id: str) -> tuple[BatchRecord | None, bool]:
    batch = await get_batch(tx, workspace_id, batch_id, lock=True)
    if batch is None or batch.processing_status != "ended":
        return batch, False
    await tx.execute(q.DELETE_REQUESTS, *key_range(batch.seq))
    await tx.execute(q.DELETE_BATCH, batch.seq)
    return batch, True


async def claim_requests(
    tx: Tx,
    worker_id: str,
    now: float,
    lease_seconds: float,
    limit: int,
    turn: int,
    grouping: Grouping | None = None,
) -> list[ClaimedRequest]:
    """Round-robin over workspaces, then over each workspace's batches: every workspace
    gets an equal share of this claim however many batches it has. With `grouping`,
    one prompt-prefix group at a time (`claims.Grouping`). Only batches with a request
    claimable now take part."""
    rows = await tx.fetchall(q.CLAIMABLE_BATCHES, now, now)
    batches = [
        Claimable(int(seq), str(ws), None if p is None else int(p), float(exp))  # type: ignore[call-overload, arg-type]
        for seq, ws, p, exp, _ in rows
    ]
    owner = {int(seq): (str(ws), str(dialect)) for seq, ws, _, _, dialect in rows}  # type: ignore[call-overload]

    async def claim_pass(wants: list[tuple[int, int]]) -> list[ClaimedRequest]:
        return await tx.claim_pass(wants, worker_id, now + lease_seconds, now, owner)

    return await claim_in_turn(batches, limit, turn, grouping, now, claim_pass)


async def record_outcomes(
    tx: Tx, worker_id: str, outcomes: Sequence[Outcome], now: float
) -> RecordReport:
    """Write the outcomes of requests this worker still holds, move the counters, count
    the usage, and end the batches that are done."""
    finals = _once([o for o in outcomes if o.state != RequestState.QUEUED])
    retries = _once([o for o in outcomes if o.state == RequestState.QUEUED])
    finished = await tx.finish_leased(finals, worker_id, now) if finals else []
    requeued = await tx.requeue_leased(retries, worker_id) if retries else []
    deltas: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for o in finished:
        deltas[o.key >> KEY_BITS][COUNTER[o.state]] += 1
    for seq in sorted(deltas):  # batch rows in one order: no deadlock between flushes
        await move_counts(tx, seq, deltas[seq])
    usage = await _usage_of(tx, finished, now)
    if usage:
        await tx.executemany(q.USAGE_UPSERT, [usage_params(u) for u in usage])
    # A request sent back for retry in a batch that is being canceled is canceled
    # instead: it was never sent to the model successfully.
    retried = sorted({batch_of(o.key) for o in requeued})
    if retried:
        for row in await tx.fetchall(q.canceling_among(len(retried)), *retried):
            await finish_unclaimed(tx, cast(int, row[0]), RequestState.CANCELED, now)
    recorded = len(finished) + len(requeued)
    return RecordReport(
        recorded=recorded,
        stale=len(outcomes) - recorded,
        ended_batches=await end_if_done(tx, set(deltas) | set(retried), now),
        applied=finished + requeued,
    )


def _once(outcomes: list[Outcome]) -> list[Outcome]:
    """The first of outcomes that name the same request and attempt: one bulk statement
    would write the row once but report each (a later one is stale, as it would be in a
    second call)."""
    if len({o.key for o in outcomes}) == len(outcomes):
        return outcomes  # the usual flush: every request once
    seen: set[tuple[int, int]] = set()
    once = []
    for o in outcomes:
        if (o.key, o.attempts) not in seen:
            seen.add((o.key, o.attempts))
            once.append(o)
    return once


async def _usage_of(tx: Tx, finished: Sequence[Outcome], now: float) -> list[UsageRow]:
    """The batch usage of these recorded outcomes, summed per batch and model."""
    sums = usage_sums(finished)
    if not sums:
        return []
    seqs = sorted({seq for seq, _ in sums})
    owners = {
        int(seq): (str(workspace_id), str(api_key_id or ""))  # type: ignore[call-overload]
        for seq, workspace_id, api_key_id in await tx.fetchall(q.owners_of(len(seqs)), *seqs)
    }
    return usage_rows(sums, owners, now)


async def extend_leases(tx: Tx, worker_id: str, keys: Sequence[int], lease_until: float) -> None:
    await tx.executemany(q.EXTEND_LEASE, [(lease_until, k, worker_id) for k in keys])


async def housekeeping(tx: Tx, now: float) -> HousekeepingReport:
    """Requeue lapsed leases, expire overdue batches (their claimed requests too), finish
    cancels, end what is done, delete results past retention."""
    report = HousekeepingReport()
    if not await tx.try_lock_housekeeping():
        return report  # another worker is at it
    report.reclaimed = await tx.execute(q.RECLAIM_LAPSED, now)
    touched: list[int] = []
    sql = q.UNENDED_BATCHES + (" FOR UPDATE" if tx.locks_rows else "")
    for row in await tx.fetchall(sql):
        seq, status, expires_at = cast(tuple[int, str, float], row)
        if expires_at <= now:
            report.expired_requests += await finish_unclaimed(
                tx, seq, RequestState.EXPIRED, now, include_claimed=True
            )
        elif status == "canceling":
            await finish_unclaimed(tx, seq, RequestState.CANCELED, now)
        touched.append(seq)
    report.ended_batches = await end_if_done(tx, touched, now)
    for row in await tx.fetchall(q.PAST_RETENTION, now):
        seq, batch_id = cast(tuple[int, str], row)
        await tx.execute(q.DELETE_REQUESTS, *key_range(seq))
        await tx.execute(q.MARK_ARCHIVED, now, seq)
        report.archived_batches.append(batch_id)
    return report


async def finish_unclaimed(
    tx: Tx, seq: int, state: RequestState, now: float, include_claimed: bool = False
) -> int:
    """Move the batch's queued (and maybe claimed) requests to a final `state`."""
    if include_claimed:
        n = await tx.execute(q.FINISH_UNFINISHED, int(state), now, *key_range(seq))
    else:
        n = await tx.execute(q.FINISH_QUEUED, int(state), now, seq)
    if n:
        await move_counts(tx, seq, {COUNTER[state]: n})
    return n


async def move_counts(tx: Tx, seq: int, counts: dict[str, int]) -> None:
    await tx.execute(q.move_counts(counts), sum(counts.values()), *counts.values(), seq)


async def end_if_done(tx: Tx, seqs: Iterable[int], now: float) -> list[str]:
    ordered = sorted(seqs)
    if not ordered:
        return []
    rows = await tx.fetchall(q.end_if_done(len(ordered)), now, *ordered)
    return [str(r[0]) for r in rows]
