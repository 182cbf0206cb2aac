"""The store port: the few domain operations the API and the scheduler may call."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from typing_extensions import Buffer


class RequestState(enum.IntEnum):
    QUEUED = 0
    CLAIMED = 1
    SUCCEEDED = 2
    ERRORED = 3
    CANCELED = 4
    EXPIRED = 5


class UnknownCursor(LookupError):
    """A pagination cursor names no batch visible to the caller."""


@dataclass(frozen=True, slots=True)
class NewBatch:
    id: str
    workspace_id: str
    created_at: float
    expires_at: float
    archive_at: float


@dataclass(frozen=True, slots=True)
class BatchRecord:
    seq: int
    id: str
    workspace_id: str
    processing_status: str
    created_at: float
    expires_at: float
    cancel_initiated_at: float | None
    ended_at: float | None
    archived_at: float | None
    total: int
    processing: int
    succeeded: int
    errored: int
    canceled: int
    expired: int


@dataclass(frozen=True, slots=True)
class ClaimedRequest:
    key: int
    batch_seq: int
    custom_id: str
    params: bytes
    attempts: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a worker learned about one claimed request.

    `state` is SUCCEEDED or ERRORED (final, with `line`: the whole results line),
    or QUEUED (retry no earlier than `available_at`).
    """

    key: int
    attempts: int
    state: RequestState
    line: bytes | None = None
    available_at: float = 0.0


@dataclass(slots=True)
class RecordReport:
    recorded: int = 0
    stale: int = 0
    ended_batches: list[str] = field(default_factory=list)


@dataclass(slots=True)
class HousekeepingReport:
    reclaimed: int = 0
    expired_requests: int = 0
    ended_batches: list[str] = field(default_factory=list)
    archived_batches: list[str] = field(default_factory=list)


class Store(Protocol):
    async def open(self) -> None:
        """Connect and bring the schema up to date (runs pending migrations)."""

    async def close(self) -> None: ...

    async def create_batch(
        self, batch: NewBatch, custom_ids: Sequence[str], params: Sequence[Buffer]
    ) -> BatchRecord:
        """Write the batch and all its requests (`params` as received) in one transaction."""

    async def get_batch(self, workspace_id: str, batch_id: str) -> BatchRecord | None: ...

    async def list_batches(
        self, workspace_id: str, limit: int, after_id: str | None, before_id: str | None
    ) -> tuple[list[BatchRecord], bool]:
        """Newest first; returns (page, has_more). Raises UnknownCursor."""

    async def cancel_batch(
        self, workspace_id: str, batch_id: str, now: float
    ) -> BatchRecord | None:
        """Mark the batch canceling and its unclaimed requests canceled."""

    async def delete_batch(
        self, workspace_id: str, batch_id: str
    ) -> tuple[BatchRecord | None, bool]:
        """Delete an ended batch: returns (record before, deleted?)."""

    def result_lines(self, batch: BatchRecord, page_size: int = 2000) -> AsyncIterator[bytes]:
        """The batch's results as JSONL chunks (each ends with a newline), page by page."""

    async def claim_requests(
        self, worker_id: str, now: float, lease_seconds: float, limit: int
    ) -> list[ClaimedRequest]:
        """Lease up to `limit` queued requests, fairly across in-progress batches."""

    async def record_outcomes(
        self, worker_id: str, outcomes: Sequence[Outcome], now: float
    ) -> RecordReport:
        """Write outcomes of requests this worker still holds, move counts, end batches."""

    async def extend_leases(
        self, worker_id: str, keys: Sequence[int], lease_until: float
    ) -> None: ...

    async def housekeeping(self, now: float) -> HousekeepingReport:
        """Requeue lapsed leases, expire overdue batches, archive results past retention."""
