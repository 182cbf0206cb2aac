"""OpenAI dialect wire structs (Files API; the Batch API and Chat Completions join them).

Timestamps are Unix seconds (ints), as the OpenAI API sends them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

FILE_PURPOSES = frozenset({"assistants", "batch", "fine-tune", "vision", "user_data", "evals"})


class FileObject(msgspec.Struct):
    id: str
    bytes: int
    created_at: int
    filename: str
    purpose: str
    expires_at: int | None = None
    status: str = "processed"
    status_details: str | None = None
    object: Literal["file"] = "file"


class FileList(msgspec.Struct):
    data: list[FileObject]
    has_more: bool
    first_id: str | None
    last_id: str | None
    object: Literal["list"] = "list"


class FileDeleted(msgspec.Struct):
    id: str
    deleted: bool = True
    object: Literal["file"] = "file"


# --- the Batch API ------------------------------------------------------------------

BatchStatus = Literal[
    "validating",
    "failed",
    "in_progress",
    "finalizing",
    "completed",
    "expired",
    "cancelling",
    "cancelled",
]


class BatchCreateIn(msgspec.Struct):
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, str] | None = None
    output_expires_after: dict[str, Any] | None = None


class BatchError(msgspec.Struct):
    code: str
    message: str
    param: str | None = None
    line: int | None = None


class BatchErrors(msgspec.Struct):
    data: list[BatchError]
    object: Literal["list"] = "list"


class BatchRequestCounts(msgspec.Struct):
    total: int
    completed: int
    failed: int


class OpenAIBatchEta(msgspec.Struct):
    """batchyard's extension on a batch not yet ended: when it is expected to end, from
    measured throughput (`services.eta`)."""

    ends_at: int | None
    """Unix seconds; None while nothing has finished lately to measure a rate from."""
    requests_per_second: float | None
    at_risk: bool
    """It is not expected to finish before `expires_at`."""


class Batch(msgspec.Struct):
    id: str
    endpoint: str
    input_file_id: str
    completion_window: str
    status: BatchStatus
    created_at: int
    errors: BatchErrors | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: BatchRequestCounts | None = None
    metadata: dict[str, str] | None = None
    model: str | None = None
    object: Literal["batch"] = "batch"
    batchyard_eta: OpenAIBatchEta | None = None
    """batchyard's extension: set while the batch runs (null once it has ended)."""


class BatchList(msgspec.Struct):
    data: list[Batch]
    has_more: bool
    first_id: str | None
    last_id: str | None
    object: Literal["list"] = "list"


class InputLine(msgspec.Struct):
    """One line of a batch input file; `body` is kept as the bytes received."""

    custom_id: str
    method: str
    url: str
    body: msgspec.Raw


class ChatProbe(msgspec.Struct):
    """What is checked of a chat body when its batch is created (the rest, when it runs)."""

    model: Annotated[str, msgspec.Meta(min_length=1)]
    messages: Annotated[list[msgspec.Raw], msgspec.Meta(min_length=1)]
    stream: bool | None = None
    n: int | None = None


class ResponsesProbe(msgspec.Struct):
    """What is checked of a Responses body when its batch is created."""

    model: Annotated[str, msgspec.Meta(min_length=1)]
    input: str | Annotated[list[msgspec.Raw], msgspec.Meta(min_length=1)]
    stream: bool | None = None
    previous_response_id: str | None = None


class EmbeddingProbe(msgspec.Struct):
    model: Annotated[str, msgspec.Meta(min_length=1)]
