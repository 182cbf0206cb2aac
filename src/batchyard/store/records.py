"""The store's domain records: what the port's operations take and return."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import msgspec

from batchyard.store.layout import RequestState

if TYPE_CHECKING:
    from batchyard.wire.messages import Usage


class UnknownCursor(LookupError):
    """A pagination cursor names no object visible to the caller."""


class QueueFull(Exception):
    """Creating the batch would put the workspace over its queued-requests limit."""

    def __init__(self, limit: int, queued: int) -> None:
        super().__init__(limit, queued)
        self.limit = limit
        self.queued = queued


class QuotaExceeded(Exception):
    """Storing the file would put the workspace's files over its storage quota."""

    def __init__(self, quota: int, used: int) -> None:
        super().__init__(quota, used)
        self.quota = quota
        self.used = used


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
    prefix: int | None = None
    """Its requests' most common prompt-prefix key (`wire.prefix_key`): claims keep
    batches that start alike together, for the engines' prefix caches."""


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
    workspace_id: str = ""
    """The batch's workspace (what its requests' file sources are looked up in)."""
    dialect: str = "anthropic"
    """The batch's dialect: `openai` params hold a Chat Completions body (its envelope)."""


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


@dataclass(frozen=True, slots=True)
class OpenAIBatchRecord:
    """The OpenAI Batch API's view of a batch."""

    id: str
    workspace_id: str
    batch_id: str | None
    endpoint: str
    input_file_id: str
    completion_window: str
    metadata: str | None
    """JSON object, as given."""
    errors: str | None
    """JSON list of validation errors (a failed batch)."""
    created_at: float
    failed_at: float | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    finalized_at: float | None = None


@dataclass(frozen=True, slots=True)
class ResponseRecord:
    """A stored object of the OpenAI Responses API, scoped by workspace."""

    id: str
    """`resp_…`"""
    workspace_id: str
    created_at: float
    body: bytes
    """The Response object's JSON, as answered."""
    input_items: bytes
    """JSON array: the response's input items (each with an `id`)."""
    previous_response_id: str | None


@dataclass(frozen=True, slots=True)
class BatchRow:
    """A batch as the dashboard lists it."""

    batch: BatchRecord
    dialect: str
    openai_id: str | None
    """The OpenAI Batch API's id of a batch created through it."""


@dataclass(frozen=True, slots=True)
class ResultRow:
    custom_id: str
    kind: str
    """succeeded | errored | canceled | expired"""
    line: bytes
    """The request's results line, as the results endpoint serves it."""


def made_line(custom_id: str, kind: str) -> bytes:
    """The results line of a request that has none stored (canceled, expired)."""
    return b'{"custom_id":"%s","result":{"type":"%s"}}' % (custom_id.encode(), kind.encode())


class EngineLoad(msgspec.Struct, frozen=True):
    name: str
    capacity: int
    in_use: int
    waiting: int


FORGET_WORKERS_AFTER_SECONDS = 86400.0
"""A worker's report not renewed for this long is dropped."""


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    id: str
    host: str
    pid: int
    started_at: float
    seen_at: float
    stopped_at: float | None
    in_flight: int
    processed: int
    engines: list[EngineLoad]


@dataclass(frozen=True, slots=True)
class WebhookDue:
    """An ended batch whose webhook is due, taken for delivery by one worker."""

    batch: BatchRecord
    url: str
    attempts: int


def created_record(seq: int, batch: NewBatch, n: int) -> BatchRecord:
    """The record of a batch just written: in progress, all `n` requests processing."""
    return BatchRecord(
        seq,
        batch.id,
        batch.workspace_id,
        "in_progress",
        batch.created_at,
        batch.expires_at,
        None,
        None,
        None,
        n,
        n,
        0,
        0,
        0,
        0,
    )
