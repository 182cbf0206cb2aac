"""The store port: the few domain operations the API and the scheduler may call."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from typing_extensions import Buffer

if TYPE_CHECKING:
    from batchyard.store.openai_batches_sql import SqlOpenAIBatches
    from batchyard.store.views_sql import SqlBatchViews
    from batchyard.store.workers_sql import SqlWorkers
    from batchyard.wire.messages import Usage


class RequestState(enum.IntEnum):
    QUEUED = 0
    CLAIMED = 1
    SUCCEEDED = 2
    ERRORED = 3
    CANCELED = 4
    EXPIRED = 5


class UnknownCursor(LookupError):
    """A pagination cursor names no object visible to the caller."""


class QueueFull(Exception):
    """Creating the batch would put the workspace over its queued-requests limit."""

    def __init__(self, limit: int, queued: int) -> None:
        super().__init__(limit, queued)
        self.limit = limit
        self.queued = queued


DEFAULT_WORKSPACE = "wrkspc_default"


@dataclass(frozen=True, slots=True)
class NewBatch:
    id: str
    workspace_id: str
    created_at: float
    expires_at: float
    archive_at: float
    api_key_id: str | None = None
    dialect: str = "anthropic"
    """`openai` for the batches behind the OpenAI Batch API (not listed by the Anthropic one)."""
    webhook_url: str | None = None


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

    @property
    def outcome(self) -> str:
        """What an ended batch came to (completed, canceled, expired); else its status."""
        if self.processing_status != "ended":
            return self.processing_status
        if self.cancel_initiated_at is not None:
            return "canceled"
        return "expired" if self.expired else "completed"


@dataclass(frozen=True, slots=True)
class ClaimedRequest:
    key: int
    batch_seq: int
    custom_id: str
    params: bytes
    attempts: int


@dataclass(frozen=True, slots=True)
class TokenUsage:
    model: str
    input_tokens: int
    """The prompt's uncached part (as `usage.input_tokens` of a message)."""
    output_tokens: int
    cache_read_input_tokens: int = 0
    cache_creation_5m_input_tokens: int = 0
    cache_creation_1h_input_tokens: int = 0

    @classmethod
    def of(cls, model: str, usage: Usage) -> TokenUsage:
        created = usage.cache_creation_input_tokens or 0
        hour = usage.cache_creation.ephemeral_1h_input_tokens if usage.cache_creation else 0
        return cls(
            model,
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_read_input_tokens or 0,
            created - hour,
            hour,
        )

    def counts(self) -> tuple[int, int, int, int, int]:
        return (
            self.input_tokens,
            self.output_tokens,
            self.cache_read_input_tokens,
            self.cache_creation_5m_input_tokens,
            self.cache_creation_1h_input_tokens,
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a worker learned about one claimed request.

    `state` is SUCCEEDED or ERRORED (final, with `line`: the whole results line),
    or QUEUED (retry no earlier than `available_at`). A succeeded outcome carries
    its `usage`, counted in the workspace's usage in the same transaction.
    """

    key: int
    attempts: int
    state: RequestState
    line: bytes | None = None
    available_at: float = 0.0
    usage: TokenUsage | None = None


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Per-workspace limits; None means the server's default."""

    requests_per_minute: int | None = None
    batch_requests_per_minute: int | None = None
    batch_queued_requests: int | None = None


@dataclass(frozen=True, slots=True)
class WorkspaceRecord:
    id: str
    name: str
    display_color: str
    created_at: float
    archived_at: float | None = None
    limits: RateLimits = RateLimits()


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    id: str
    kind: str  # "api" (one workspace) or "admin" (the Admin API, any workspace)
    workspace_id: str | None
    name: str
    hint: str
    status: str  # active | inactive | archived
    created_at: float
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class UsageRow:
    bucket: int  # start of the hour, unix seconds
    workspace_id: str
    api_key_id: str
    model: str
    service_tier: str  # "batch" or "standard"
    requests: int
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int = 0
    cache_creation_5m_input_tokens: int = 0
    cache_creation_1h_input_tokens: int = 0


@dataclass(slots=True)
class RecordReport:
    recorded: int = 0
    stale: int = 0
    ended_batches: list[str] = field(default_factory=list)
    applied: list[Outcome] = field(default_factory=list)
    """The outcomes recorded (the others were stale: lease lost or batch ended)."""


@dataclass(slots=True)
class HousekeepingReport:
    reclaimed: int = 0
    expired_requests: int = 0
    ended_batches: list[str] = field(default_factory=list)
    archived_batches: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class FileRecord:
    id: str
    workspace_id: str
    filename: str
    purpose: str
    bytes: int
    created_at: float
    expires_at: float | None
    blob: str
    """The key of the file's bytes in the blob store."""


class FileStore(Protocol):
    """File records (their bytes live in a blob store), scoped by workspace."""

    async def create_file(self, record: FileRecord) -> FileRecord: ...

    async def get_file(self, workspace_id: str, file_id: str) -> FileRecord | None: ...

    async def list_files(
        self,
        workspace_id: str,
        limit: int,
        after_id: str | None,
        *,
        ascending: bool = False,
        purpose: str | None = None,
    ) -> tuple[list[FileRecord], bool]:
        """Raises UnknownCursor."""

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


class Store(Protocol):
    @property
    def tenancy(self) -> TenancyStore: ...

    @property
    def files(self) -> FileStore: ...

    @property
    def openai_batches(self) -> SqlOpenAIBatches: ...

    @property
    def views(self) -> SqlBatchViews:
        """The dashboard's reads."""

    @property
    def workers(self) -> SqlWorkers:
        """The workers' reports of themselves."""

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
        also: Sequence[tuple[str, Sequence[object]]] = (),
    ) -> BatchRecord:
        """Write the batch and all its requests (`params` as received) in one transaction.

        With `queued_limit`, raise QueueFull instead if the workspace's unfinished
        requests plus these would exceed it. `also`: statements (shared SQL, `?`
        placeholders) that belong to the same transaction."""

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
        """Lease up to `limit` queued requests, fairly across workspaces, then batches."""

    async def record_outcomes(
        self, worker_id: str, outcomes: Sequence[Outcome], now: float
    ) -> RecordReport:
        """Write outcomes of requests this worker still holds, move counts, end batches."""

    async def extend_leases(
        self, worker_id: str, keys: Sequence[int], lease_until: float
    ) -> None: ...

    async def housekeeping(self, now: float) -> HousekeepingReport:
        """Requeue lapsed leases, expire overdue batches, archive results past retention."""
