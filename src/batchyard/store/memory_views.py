"""The in-memory store's reads for the dashboard and the metrics, the workers' reports,
and the webhooks' delivery state."""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter
from collections.abc import Callable

from batchyard.store.layout import KIND_OF, RESULT_KINDS, RequestState
from batchyard.store.memory_openai import MemoryOpenAIBatches
from batchyard.store.memory_rows import BatchTable, MemBatch, MemRequest, record_of
from batchyard.store.records import (
    FORGET_WORKERS_AFTER_SECONDS,
    BatchRecord,
    BatchRow,
    ResultRow,
    WebhookDue,
    WorkerStatus,
    made_line,
)

_SHOWN: dict[str | None, Callable[[MemBatch], bool]] = {
    None: lambda b: True,
    "running": lambda b: not b.ended,
    "ended": lambda b: b.ended,
}

_TIMED = (RequestState.SUCCEEDED, RequestState.ERRORED)


def _result(r: MemRequest) -> ResultRow:
    kind = KIND_OF[r.state]
    line = made_line(r.custom_id, kind) if r.result is None else r.result
    return ResultRow(r.custom_id, kind, line)


class MemoryViews:
    def __init__(self, batches: BatchTable, openai: MemoryOpenAIBatches) -> None:
        self._batches = batches
        self._openai = openai

    def _row(self, b: MemBatch) -> BatchRow:
        return BatchRow(b.record(), b.new.dialect, self._openai.by_batch.get(b.id))

    async def batches(
        self,
        workspace_id: str,
        limit: int,
        before_seq: int | None = None,
        status: str | None = None,
    ) -> tuple[list[BatchRow], bool]:
        shown, pivot = _SHOWN[status], before_seq if before_seq is not None else 2**62
        newest_first = reversed(self._batches.by_seq.values())
        wanted = (b for b in newest_first if b.workspace_id == workspace_id and b.seq < pivot)
        rows = list(itertools.islice(filter(shown, wanted), limit + 1))
        return [self._row(b) for b in rows[:limit]], len(rows) > limit

    async def batch(self, workspace_id: str, batch_id: str) -> BatchRow | None:
        found = self._batches.get(workspace_id, batch_id)
        return self._row(found) if found is not None else None

    def _finished(self, batch: BatchRecord) -> list[MemRequest]:
        found = self._batches.by_seq.get(batch.seq)
        requests = found.requests if found is not None else []
        return [r for r in requests if r.state >= RequestState.SUCCEEDED]

    async def results(
        self,
        batch: BatchRecord,
        *,
        search: str = "",
        kind: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[ResultRow], int]:
        needle = search.lower()
        rows = [
            r
            for r in self._finished(batch)
            if (kind is None or r.state == RESULT_KINDS[kind]) and needle in r.custom_id.lower()
        ]
        # An ended batch's counts are final: with no search they are its record's
        # (unless its results were deleted), as the SQL stores count them.
        if batch.processing_status == "ended" and batch.archived_at is None and not search:
            counts = {k: int(getattr(batch, k)) for k in RESULT_KINDS}
        else:
            counts = dict(Counter(KIND_OF[r.state] for r in rows))
        if kind is not None:
            matching = counts.get(kind, 0)
        else:
            matching = sum(counts.values())
            rows.sort(key=lambda r: r.state != RequestState.ERRORED)  # stable: key order kept
        return [_result(r) for r in rows[offset : offset + limit]], matching

    async def result(self, batch: BatchRecord, custom_id: str) -> ResultRow | None:
        found = (r for r in self._finished(batch) if r.custom_id == custom_id)
        r = next(found, None)
        return _result(r) if r is not None else None

    async def records(self, batch_ids: list[str]) -> list[BatchRecord]:
        found = (record_of(self._batches.by_id.get(i)) for i in dict.fromkeys(batch_ids))
        return [r for r in found if r is not None]

    async def open_batches(self, limit: int = 10_000) -> list[BatchRecord]:
        found = (b.record() for b in self._batches.by_seq.values() if not b.ended)
        return list(itertools.islice(found, limit))

    async def timeline(
        self, batch: BatchRecord, start: float, width: float, buckets: int
    ) -> list[tuple[int, int]]:
        # Integer milliseconds, truncated, as the SQL stores count.
        start_ms, width_ms = int(start * 1000), max(1, int(width * 1000))
        counts = [[0, 0] for _ in range(buckets)]
        for r in self._finished(batch):
            if r.state in _TIMED and r.finished_at is not None and r.finished_at >= start:
                i = (int(r.finished_at * 1000) - start_ms) // width_ms
                if 0 <= i < buckets:
                    counts[i][r.state != RequestState.SUCCEEDED] += 1
        return [(ok, bad) for ok, bad in counts]


class MemoryWorkers:
    def __init__(self) -> None:
        self._workers: dict[str, WorkerStatus] = {}

    async def report(self, status: WorkerStatus) -> None:
        known = self._workers.get(status.id)
        if known is not None:  # who and since when stay as first written
            status = dataclasses.replace(
                status, host=known.host, pid=known.pid, started_at=known.started_at
            )
        self._workers[status.id] = dataclasses.replace(status, engines=list(status.engines))
        gone = status.seen_at - FORGET_WORKERS_AFTER_SECONDS
        for w in [w for w in self._workers.values() if w.seen_at < gone]:
            del self._workers[w.id]

    async def list(self) -> list[WorkerStatus]:
        rows = sorted(
            self._workers.values(), key=lambda w: (w.stopped_at is not None, w.started_at, w.id)
        )
        return [dataclasses.replace(w, engines=list(w.engines)) for w in rows]


class MemoryWebhooks:
    def __init__(self, batches: BatchTable) -> None:
        self._batches = batches

    async def take_due(self, now: float, lease_seconds: float, limit: int = 20) -> list[WebhookDue]:
        due = (
            b
            for b in self._batches.by_seq.values()
            if b.new.webhook_url is not None
            and b.webhook_done_at is None
            and b.ended
            and (b.webhook_next_at or 0) <= now
        )
        taken = []
        for b in itertools.islice(due, limit):
            b.webhook_next_at = now + lease_seconds
            taken.append(WebhookDue(b.record(), str(b.new.webhook_url), b.webhook_attempts))
        return taken

    async def record_attempt(
        self, batch_seq: int, attempts: int, *, done_at: float | None, next_at: float | None
    ) -> None:
        found = self._batches.by_seq.get(batch_seq)
        if found is None:
            return
        found.webhook_attempts = attempts
        if done_at is not None:
            found.webhook_done_at = done_at
        else:
            found.webhook_next_at = next_at
