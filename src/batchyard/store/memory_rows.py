"""The in-memory store's rows: a batch holding its requests, the table of batches, and
cursor pages over a table (the rules of `store.sql_runner.page`, on Python lists)."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from batchyard.store.layout import FINAL_STATES, KEY_BITS, KIND_OF, RequestState, batch_of
from batchyard.store.records import BatchRecord, ClaimedRequest, NewBatch, UnknownCursor, made_line

R = TypeVar("R")
"""A final state → the `result.type` of its results line."""


class DuplicateId(ValueError):
    """A row with this id is there already (the SQL stores' unique constraint)."""


def insert(table: dict[str, R], key: str, row: R) -> None:
    """Add `row` under `key`, refusing a key that is taken."""
    if key in table:
        raise DuplicateId(key)
    table[key] = row


@dataclass(slots=True, eq=False)
class MemRequest:
    key: int
    custom_id: str
    params: bytes | None
    state: RequestState = RequestState.QUEUED
    attempts: int = 0
    available_at: float = 0.0
    lease_until: float | None = None
    worker: str | None = None
    result: bytes | None = None
    finished_at: float | None = None

    def line(self) -> bytes | None:
        """The results line: the stored one, or one made for a canceled or expired request."""
        if self.result is not None:
            return self.result
        if self.state in (RequestState.CANCELED, RequestState.EXPIRED):
            return made_line(self.custom_id, KIND_OF[self.state])
        return None


@dataclass(slots=True, eq=False)
class MemBatch:
    """A batch row and its requests (`requests[i]` has key `seq << KEY_BITS | i`)."""

    seq: int
    new: NewBatch
    requests: list[MemRequest]
    processing_status: str = "in_progress"
    cancel_initiated_at: float | None = None
    ended_at: float | None = None
    archived_at: float | None = None
    total: int = 0
    finals: dict[RequestState, int] = field(default_factory=lambda: dict.fromkeys(FINAL_STATES, 0))
    queue: list[tuple[float, int]] = field(default_factory=list)
    """A heap of (available_at, key): one entry per queued request (entries of requests
    that have left the queue since are skipped when they surface)."""
    leased: dict[int, MemRequest] = field(default_factory=dict)
    """The claimed requests, by key."""
    webhook_attempts: int = 0
    webhook_next_at: float | None = None
    webhook_done_at: float | None = None

    @property
    def id(self) -> str:
        return self.new.id

    @property
    def workspace_id(self) -> str:
        return self.new.workspace_id

    @property
    def processing(self) -> int:
        return self.total - sum(self.finals.values())

    @property
    def ended(self) -> bool:
        return self.processing_status == "ended"

    def record(self) -> BatchRecord:
        f = self.finals
        return BatchRecord(
            self.seq,
            self.new.id,
            self.new.workspace_id,
            self.processing_status,
            self.new.created_at,
            self.new.expires_at,
            self.cancel_initiated_at,
            self.ended_at,
            self.archived_at,
            self.total,
            self.processing,
            f[RequestState.SUCCEEDED],
            f[RequestState.ERRORED],
            f[RequestState.CANCELED],
            f[RequestState.EXPIRED],
        )

    def request(self, key: int) -> MemRequest | None:
        index = key - (self.seq << KEY_BITS)
        return self.requests[index] if 0 <= index < len(self.requests) else None

    def enqueue(self, r: MemRequest) -> None:
        r.state, r.lease_until, r.worker = RequestState.QUEUED, None, None
        self.leased.pop(r.key, None)
        heapq.heappush(self.queue, (r.available_at, r.key))

    def claimable(self, now: float) -> bool:
        """Whether a queued request is available by `now` (stale queue entries go)."""
        while self.queue:
            available_at, key = self.queue[0]
            r = self.request(key)
            if r is not None and r.state == RequestState.QUEUED:
                return available_at <= now
            heapq.heappop(self.queue)
        return False

    def claim(self, worker: str, now: float, lease_until: float, want: int) -> list[ClaimedRequest]:
        """Lease up to `want` queued requests available by `now`: those available
        earliest (then lowest keys) are taken."""
        taken: list[ClaimedRequest] = []
        while self.queue and len(taken) < want and self.queue[0][0] <= now:
            _, key = heapq.heappop(self.queue)
            r = self.request(key)
            if r is None or r.state != RequestState.QUEUED:
                continue
            r.state, r.lease_until, r.worker = RequestState.CLAIMED, lease_until, worker
            r.attempts += 1
            self.leased[key] = r
            params = r.params or b""
            taken.append(
                ClaimedRequest(
                    key,
                    self.seq,
                    r.custom_id,
                    params,
                    r.attempts,
                    self.workspace_id,
                    self.new.dialect,
                )
            )
        return sorted(taken, key=lambda c: c.key)  # as SQLite returns them

    def finish(self, r: MemRequest, state: RequestState, now: float, line: bytes | None) -> None:
        """Move one request to a final `state` (and the counters with it)."""
        self.leased.pop(r.key, None)
        r.state, r.result, r.params, r.finished_at = state, line, None, now
        r.lease_until, r.worker = None, None
        self.finals[state] += 1

    def finish_unclaimed(
        self, state: RequestState, now: float, *, include_claimed: bool = False
    ) -> int:
        """Move the queued (and maybe the claimed) requests to a final `state`."""
        moving = [r for _, key in self.queue if (r := self.request(key)) is not None]
        moving = [r for r in moving if r.state == RequestState.QUEUED]
        if include_claimed:
            moving += self.leased.values()
        for r in moving:
            self.finish(r, state, now, None)
        self.queue.clear()
        return len(moving)

    def reclaim(self, now: float) -> int:
        """Requeue the claimed requests whose lease ran out before `now`."""
        lapsed = [
            r for r in self.leased.values() if r.lease_until is not None and r.lease_until < now
        ]
        for r in lapsed:
            self.enqueue(r)
        return len(lapsed)

    def end_if_done(self, now: float) -> bool:
        if self.processing or self.ended:
            return False
        self.processing_status, self.ended_at = "ended", now
        return True

    def archive(self, now: float) -> None:
        """Delete the requests (their results with them): retention is over."""
        self.requests, self.queue, self.leased = [], [], {}
        self.archived_at = now


def record_of(batch: MemBatch | None) -> BatchRecord | None:
    return batch.record() if batch is not None else None


class BatchTable:
    """Every batch by seq (ascending: the dicts keep insertion order) and by id."""

    def __init__(self) -> None:
        self.by_seq: dict[int, MemBatch] = {}
        self.by_id: dict[str, MemBatch] = {}
        self._last_seq = 0

    def add(self, new: NewBatch, custom_ids: Iterable[str], params: Iterable[bytes]) -> MemBatch:
        if new.id in self.by_id:
            raise DuplicateId(new.id)
        self._last_seq += 1  # never reused, as an identity column
        seq = self._last_seq
        base = seq << KEY_BITS
        requests = [
            MemRequest(base + i, cid, p)
            for i, (cid, p) in enumerate(zip(custom_ids, params, strict=True))
        ]
        # Keys ascending, all available at 0: already a heap.
        batch = MemBatch(
            seq, new, requests, total=len(requests), queue=[(0.0, r.key) for r in requests]
        )
        self.by_seq[seq] = batch
        self.by_id[new.id] = batch
        return batch

    def remove(self, batch: MemBatch) -> None:
        del self.by_seq[batch.seq]
        del self.by_id[batch.id]

    def get(self, workspace_id: str, batch_id: str) -> MemBatch | None:
        found = self.by_id.get(batch_id)
        return found if found is not None and found.workspace_id == workspace_id else None

    def request(self, key: int) -> tuple[MemBatch, MemRequest] | None:
        batch = self.by_seq.get(batch_of(key))
        r = batch.request(key) if batch is not None else None
        return (batch, r) if batch is not None and r is not None else None


def page(
    rows: Iterable[R],
    id_of: Callable[[R], str],
    limit: int,
    after_id: str | None,
    before_id: str | None,
    *,
    ascending: bool = False,
) -> tuple[list[R], bool]:
    """One page of `rows` (given oldest first), newest first (oldest first when
    `ascending`); returns (rows, has_more). A cursor must name one of `rows`, else
    UnknownCursor."""
    table = list(rows)
    cursor = before_id if before_id is not None else after_id
    at = -1
    if cursor is not None:
        at = next((i for i, r in enumerate(table) if id_of(r) == cursor), -2)
        if at == -2:
            raise UnknownCursor(cursor)
    if ascending or before_id is not None:
        newer = table[at + 1 :]
        taken = newer[:limit]
        return (taken if ascending else taken[::-1]), len(newer) > limit
    older = table[:at] if cursor is not None else table
    return older[::-1][:limit], len(older) > limit
