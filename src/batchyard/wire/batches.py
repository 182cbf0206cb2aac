"""Message Batches wire structs (request body, MessageBatch, pages, results lines)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from batchyard.wire.errors import ErrorResponse

CUSTOM_ID_PATTERN = "^[a-zA-Z0-9_-]{1,64}$"
MAX_REQUESTS = 100_000
MAX_BODY_BYTES = 256 * 1024 * 1024

CustomId = Annotated[str, msgspec.Meta(pattern=CUSTOM_ID_PATTERN)]


class BatchRequestIn(msgspec.Struct, forbid_unknown_fields=True):
    """One entry of `requests`: `params` is kept as the bytes received."""

    custom_id: CustomId
    params: msgspec.Raw


class BatchCreateIn(msgspec.Struct):
    requests: list[BatchRequestIn]
    webhook_url: str | None = None
    """batchyard: POST a signed `message_batch.ended` event here when the batch ends."""


class ParamsProbe(msgspec.Struct):
    """The few keys of `params` that are checked at create time; the rest waits for the worker."""

    stream: object = None
    speed: object = None


ProcessingStatus = Literal["in_progress", "canceling", "ended"]


class RequestCounts(msgspec.Struct):
    processing: int
    succeeded: int
    errored: int
    canceled: int
    expired: int


class BatchEta(msgspec.Struct):
    """batchyard's extension on a batch not yet ended: when it is expected to end, from
    measured throughput (`services.eta`)."""

    ends_at: datetime | None
    """None while nothing has finished lately to measure a rate from."""
    requests_per_second: float | None
    """The rate the estimate assumes for this batch."""
    at_risk: bool
    """It is not expected to finish before `expires_at`."""


class MessageBatch(msgspec.Struct):
    id: str
    processing_status: ProcessingStatus
    request_counts: RequestCounts
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None
    cancel_initiated_at: datetime | None
    archived_at: datetime | None
    results_url: str | None
    type: Literal["message_batch"] = "message_batch"
    batchyard_eta: BatchEta | None = None
    """batchyard's extension: set while the batch runs (null once it has ended)."""


class MessageBatchPage(msgspec.Struct):
    data: list[MessageBatch]
    has_more: bool
    first_id: str | None
    last_id: str | None


class DeletedMessageBatch(msgspec.Struct):
    id: str
    type: Literal["message_batch_deleted"] = "message_batch_deleted"


class ErroredResult(msgspec.Struct, tag="errored", tag_field="type"):
    error: ErrorResponse
