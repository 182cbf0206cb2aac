"""The store port: the domain operations the services and the scheduler may call.

Only Protocols over the records of `store.records`; the implementations (SQLite,
PostgreSQL, in memory) import this, never the other way round.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from typing_extensions import Buffer

from batchyard.store.claims import Grouping
from batchyard.store.records import (
    ApiKeyRecord,
    BatchRecord,
    BatchRow,
    ClaimedRequest,
    FileRecord,
    HousekeepingReport,
    NewBatch,
    OpenAIBatchRecord,
    Outcome,
    RateLimits,
    RecordReport,
    ResponseRecord,
    ResultRow,
    UsageRow,
    WebhookDue,
    WorkerStatus,
    WorkspaceRecord,
)


class FileStore(Protocol):
    """File records (their bytes live in a blob store), scoped by workspace."""

    async def create_file(self, record: FileRecord, quota: int | None = None) -> FileRecord:
        """Raises QuotaExceeded (nothing written) if the workspace's files would then hold
        more than `quota` bytes; two creates cannot both pass the check."""

    async def workspace_bytes(self, workspace_id: str) -> int:
        """The bytes of all the workspace's files (expired ones too, until deleted)."""

    async def expired_files(self, now: float, limit: int) -> list[FileRecord]:
        """Up to `limit` files of any workspace whose `expires_at` is past, oldest first."""

    async def get_file(self, workspace_id: str, file_id: str) -> FileRecord | None: ...

    async def list_files(
        self,
        workspace_id: str,
        limit: int,
        after_id: str | None,
        *,
        ascending: bool = False,
        purpose: str | None = None,
        before_id: str | None = None,
    ) -> tuple[list[FileRecord], bool]:
        """Newest first (oldest first when `ascending`); `before_id`: the newer ones
        next to that file. Raises UnknownCursor."""

    async def delete_file(self, workspace_id: str, file_id: str) -> FileRecord | None: ...


class TenancyStore(Protocol):
    """Workspaces, API keys and usage counters."""

    async def create_workspace(self, workspace: WorkspaceRecord) -> WorkspaceRecord: ...

    async def get_workspace(self, workspace_id: str) -> WorkspaceRecord | None: ...

    async def workspace_by_name(self, name: str) -> WorkspaceRecord | None:
        """The oldest unarchived workspace with this name."""

    async def list_workspaces(
        self, limit: int, after_id: str | None, before_id: str | None, include_archived: bool
    ) -> tuple[list[WorkspaceRecord], bool]:
        """Newest first; returns (page, has_more). Raises UnknownCursor."""

    async def update_workspace(
        self, workspace_id: str, name: str | None, limits: RateLimits | None
    ) -> WorkspaceRecord | None: ...

    async def archive_workspace(self, workspace_id: str, now: float) -> WorkspaceRecord | None:
        """Archive the workspace and every key in it (they stop working at once)."""

    async def create_key(self, key: ApiKeyRecord, digest: str) -> ApiKeyRecord: ...

    async def key_by_digest(
        self, digest: str
    ) -> tuple[ApiKeyRecord, WorkspaceRecord | None] | None:
        """The key with this digest and its workspace (None for admin keys), in one read."""

    async def get_key(self, key_id: str) -> ApiKeyRecord | None: ...

    async def list_keys(
        self,
        limit: int,
        after_id: str | None,
        before_id: str | None,
        workspace_id: str | None,
        status: str | None,
    ) -> tuple[list[ApiKeyRecord], bool]:
        """Newest first; returns (page, has_more). Raises UnknownCursor."""

    async def update_key(
        self, key_id: str, name: str | None, status: str | None
    ) -> ApiKeyRecord | None: ...

    async def count_keys(self) -> int:
        """Keys of any status (zero means a first run)."""

    async def add_usage(self, rows: Sequence[UsageRow]) -> None:
        """Add to the hourly counters."""

    async def usage(self, start: int, end: int) -> list[UsageRow]:
        """The hourly rows with `start <= bucket < end`."""


class OpenAIBatchStore(Protocol):
    """The OpenAI Batch API's records (its batches run as `openai`-dialect batches)."""

    async def create(self, record: OpenAIBatchRecord) -> OpenAIBatchRecord:
        """Write a record that runs no batch (one whose input failed validation)."""

    async def get(
        self, workspace_id: str, openai_id: str
    ) -> tuple[OpenAIBatchRecord, BatchRecord | None] | None: ...

    async def page(
        self, workspace_id: str, limit: int, after: str | None
    ) -> tuple[list[tuple[OpenAIBatchRecord, BatchRecord | None]], bool]:
        """Newest first; returns (page, has_more). Raises UnknownCursor."""

    async def unfinalized(self, limit: int = 20) -> list[tuple[OpenAIBatchRecord, BatchRecord]]:
        """Batches whose requests have all ended but whose output files are not written yet."""

    async def finalize(
        self, openai_id: str, output_file_id: str | None, error_file_id: str | None, now: float
    ) -> bool:
        """Record the output files, unless another worker did first (then False)."""


class BatchViews(Protocol):
    """The dashboard's and the metrics' reads."""

    async def batches(
        self,
        workspace_id: str,
        limit: int,
        before_seq: int | None = None,
        status: str | None = None,
    ) -> tuple[list[BatchRow], bool]:
        """The workspace's batches of both dialects, newest first, `running` or
        `ended` ones only if asked; (page, more?)."""

    async def batch(self, workspace_id: str, batch_id: str) -> BatchRow | None: ...

    async def results(
        self,
        batch: BatchRecord,
        *,
        search: str = "",
        kind: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[ResultRow], int]:
        """Finished requests whose custom_id holds `search` (any case), errored ones
        first (unless `kind` picks one type), then in submission order; (page, how
        many match in all)."""

    async def result(self, batch: BatchRecord, custom_id: str) -> ResultRow | None:
        """The finished request `custom_id` of the batch, if it has finished."""

    async def records(self, batch_ids: list[str]) -> list[BatchRecord]:
        """The batches with these ids, whatever their workspace (for metrics)."""

    async def timeline(
        self, batch: BatchRecord, start: float, width: float, buckets: int
    ) -> list[tuple[int, int]]:
        """(succeeded, errored) finished in each of `buckets` intervals of `width`
        seconds from `start`."""

    async def open_batches(self, limit: int = 10_000) -> list[BatchRecord]:
        """Every workspace's batches not yet ended (in progress or canceling), oldest
        first, at most `limit` (the ETAs' throughput samples)."""


class WorkerReports(Protocol):
    """The workers' reports of themselves."""

    async def report(self, status: WorkerStatus) -> None:
        """Write the worker's row (and drop the rows of workers long gone)."""

    async def list(self) -> list[WorkerStatus]:
        """Every worker heard from in the last day, the running ones first."""


class WebhookStore(Protocol):
    """The delivery state of ended batches' webhooks."""

    async def take_due(self, now: float, lease_seconds: float, limit: int = 20) -> list[WebhookDue]:
        """Ended batches whose webhook is due, each taken for `lease_seconds` (another
        worker skips it meanwhile), oldest first."""

    async def record_attempt(
        self, batch_seq: int, attempts: int, *, done_at: float | None, next_at: float | None
    ) -> None:
        """After a delivery attempt: done (delivered or given up) or due again at `next_at`."""


class ResponseStore(Protocol):
    """Stored objects of the OpenAI Responses API, scoped by workspace."""

    async def put_response(self, record: ResponseRecord) -> None:
        """Insert (a new id)."""

    async def get_response(self, workspace_id: str, response_id: str) -> ResponseRecord | None:
        """None when absent, deleted, or in another workspace."""

    async def delete_response(self, workspace_id: str, response_id: str) -> bool:
        """True when it was there (in that workspace) and is now gone."""


class Store(Protocol):
    @property
    def tenancy(self) -> TenancyStore: ...

    @property
    def files(self) -> FileStore: ...

    @property
    def openai_batches(self) -> OpenAIBatchStore: ...

    @property
    def views(self) -> BatchViews: ...

    @property
    def workers(self) -> WorkerReports: ...

    @property
    def webhooks(self) -> WebhookStore: ...

    @property
    def responses(self) -> ResponseStore: ...

    async def open(self) -> None:
        """Connect and bring the schema up to date (runs pending migrations)."""

    async def open_counts(self) -> tuple[int, int]:
        """(batches not ended, their unfinished requests), store-wide (for metrics)."""

    async def close(self) -> None: ...

    async def create_batch(
        self,
        batch: NewBatch,
        custom_ids: Sequence[str],
        params: Sequence[Buffer],
        queued_limit: int | None = None,
        openai: OpenAIBatchRecord | None = None,
    ) -> BatchRecord:
        """Write the batch and all its requests (`params` as received) in one transaction.

        With `queued_limit`, raise QueueFull instead if the workspace's unfinished
        requests plus these would exceed it. `openai`: the OpenAI Batch API's record
        of this batch (its `batch_id` is the batch's id), written in the same transaction."""

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
        self,
        worker_id: str,
        now: float,
        lease_seconds: float,
        limit: int,
        grouping: Grouping | None = None,
    ) -> list[ClaimedRequest]:
        """Lease up to `limit` queued requests, fairly across workspaces, then batches;
        with `grouping` (the caller's, kept across its claims), one prompt-prefix
        group at a time (`claims.Grouping`)."""

    async def record_outcomes(
        self, worker_id: str, outcomes: Sequence[Outcome], now: float
    ) -> RecordReport:
        """Write outcomes of requests this worker still holds, move counts, end batches."""

    async def extend_leases(
        self, worker_id: str, keys: Sequence[int], lease_until: float
    ) -> None: ...

    async def housekeeping(self, now: float) -> HousekeepingReport:
        """Requeue lapsed leases, expire overdue batches, archive results past retention."""
