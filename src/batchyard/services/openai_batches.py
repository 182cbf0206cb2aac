"""The OpenAI Batch API on the one store: an input file becomes a batch whose requests
run on the same workers and engines as any other; when it ends, its results become
OpenAI output and error files.

- `create` validates every line of the input file the way OpenAI does (a bad file
  fails the batch with `errors.data[]` naming the lines) and translates each Chat
  Completions body into the Messages request the workers run; the batch and its
  OpenAI record are written in one transaction.
- The Batch object's status is derived from the batch: in_progress, cancelling,
  finalizing (ended, files not written yet), then completed / cancelled / expired.
- `finalize_ended` (run by workers) writes the output and error files.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec

from batchyard import ids
from batchyard.batches import BatchService
from batchyard.blobs import LocalBlobs
from batchyard.config import Settings
from batchyard.errors import InvalidRequest, NotFound, http_status_of
from batchyard.files import FileService
from batchyard.store.records import BatchRecord, OpenAIBatchRecord, UnknownCursor
from batchyard.translate.chat_answers import chat_completion
from batchyard.translate.envelope import unservable, wrap_chat_body
from batchyard.webhooks import WebhookSender
from batchyard.wire.errors import format_validation_error
from batchyard.wire.messages import Message
from batchyard.wire.openai import (
    Batch,
    BatchCreateIn,
    BatchError,
    BatchErrors,
    BatchRequestCounts,
    ChatProbe,
    EmbeddingProbe,
    InputLine,
)

log = logging.getLogger("batchyard.openai")

MAX_LINES = 50_000
MAX_INPUT_BYTES = 200 * 1024 * 1024
MAX_ERRORS = 1000
ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings")
_SAFE_CUSTOM_ID = re.compile(r'^[^"\\\x00-\x1f]{1,512}$')
_line_decoder = msgspec.json.Decoder(InputLine)
_chat_probe = msgspec.json.Decoder(ChatProbe)
_embedding_probe = msgspec.json.Decoder(EmbeddingProbe)
_encoder = msgspec.json.Encoder()


def _ts(epoch: float | None) -> int | None:
    return int(epoch) if epoch is not None else None


def status_of(record: OpenAIBatchRecord, batch: BatchRecord | None) -> str:
    if record.failed_at is not None or batch is None:
        return "failed" if record.failed_at is not None else "validating"
    if batch.processing_status == "in_progress":
        return "in_progress"
    if batch.processing_status == "canceling":
        return "cancelling"
    if record.finalized_at is None:  # ended; its files are being written
        return "cancelling" if batch.cancel_initiated_at is not None else "finalizing"
    if batch.cancel_initiated_at is not None:
        return "cancelled"
    if batch.expired and batch.ended_at is not None and batch.ended_at >= batch.expires_at:
        return "expired"
    return "completed"


def to_wire(record: OpenAIBatchRecord, batch: BatchRecord | None) -> Batch:
    status = status_of(record, batch)
    done = record.finalized_at
    errors = None
    if record.errors:
        errors = BatchErrors(msgspec.json.decode(record.errors, type=list[BatchError]))
    counts = None
    if batch is not None:
        counts = BatchRequestCounts(
            total=batch.total,
            completed=batch.succeeded,
            failed=batch.errored + batch.canceled + batch.expired,
        )
    return Batch(
        id=record.id,
        endpoint=record.endpoint,
        input_file_id=record.input_file_id,
        completion_window=record.completion_window,
        status=status,  # type: ignore[arg-type]
        created_at=int(record.created_at),
        errors=errors,
        output_file_id=record.output_file_id,
        error_file_id=record.error_file_id,
        in_progress_at=_ts(batch.created_at) if batch else None,
        expires_at=_ts(batch.expires_at) if batch else None,
        finalizing_at=_ts(batch.ended_at) if batch else None,
        completed_at=_ts(done) if status == "completed" else None,
        failed_at=_ts(record.failed_at),
        expired_at=_ts(done) if status == "expired" else None,
        cancelling_at=_ts(batch.cancel_initiated_at) if batch else None,
        cancelled_at=_ts(done) if status == "cancelled" else None,
        request_counts=counts,
        metadata=json.loads(record.metadata) if record.metadata else None,
    )


def _check_metadata(metadata: dict[str, str] | None) -> None:
    if metadata is None:
        return
    if len(metadata) > 16:
        raise InvalidRequest("metadata: at most 16 pairs", param="metadata")
    for key, value in metadata.items():
        if len(key) > 64 or len(value) > 512:
            raise InvalidRequest(
                "metadata: keys up to 64 characters, values up to 512", param="metadata"
            )


async def lines_of(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The lines of a byte stream, without their newlines."""
    rest = b""
    async for chunk in chunks:
        parts = (rest + chunk).split(b"\n")
        rest = parts.pop()
        for part in parts:
            yield part
    if rest:
        yield rest


class Validated:
    """What the input file holds: the requests to run, or the reasons it fails."""

    def __init__(self) -> None:
        self.custom_ids: list[str] = []
        self.params: list[bytes] = []
        self.errors: list[BatchError] = []

    def fail(self, code: str, message: str, line: int | None, param: str | None = None) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(BatchError(code, message, param, line))


async def validate(lines: AsyncIterator[bytes], endpoint: str) -> Validated:
    out = Validated()
    seen: set[str] = set()
    n = 0
    async for raw in lines:
        n += 1
        if not raw.strip():
            continue
        try:
            line = _line_decoder.decode(raw)
        except msgspec.ValidationError as exc:
            text = format_validation_error(exc)
            missing = re.search(r"missing required field `(\w+)`", text)
            if missing:
                out.fail("missing_required_parameter", text, n, missing.group(1))
            else:
                out.fail("invalid_request", text, n)
            continue
        except msgspec.DecodeError as exc:
            out.fail("invalid_json_line", f"This line is not valid JSON: {exc}", n)
            continue
        if not _SAFE_CUSTOM_ID.match(line.custom_id):
            out.fail(
                "invalid_custom_id",
                "custom_id: 1 to 512 characters, without quotes, backslashes or control characters",
                n,
                "custom_id",
            )
            continue
        if line.custom_id in seen:
            out.fail("duplicate_custom_id", f"custom_id {line.custom_id!r} is used twice", n)
            continue
        seen.add(line.custom_id)
        if line.method.upper() != "POST":
            out.fail("invalid_method", "method: must be POST", n, "method")
            continue
        if line.url != endpoint:
            out.fail(
                "invalid_url",
                f"url: {line.url!r} does not match the batch's endpoint {endpoint!r}",
                n,
                "url",
            )
            continue
        try:
            if endpoint == "/v1/embeddings":
                model = _embedding_probe.decode(line.body).model
            else:
                probe = _chat_probe.decode(line.body)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            text = format_validation_error(exc)
            field = text.split(":")[0] if ": " in text else ""
            out.fail("invalid_request", f"body.{text}", n, f"body.{field}" if field else "body")
            continue
        out.custom_ids.append(line.custom_id)
        if endpoint == "/v1/embeddings":
            # No engine here computes embeddings: each line ends with its own error.
            out.params.append(
                unservable(f"/v1/embeddings: no engine here computes embeddings (model {model!r})")
            )
            continue
        if probe.stream:
            out.fail("invalid_request", "body.stream: not supported in a batch", n, "body.stream")
        elif probe.n not in (None, 1):
            out.fail("invalid_request", "body.n: only 1 choice per request", n, "body.n")
        # The rest of the body is checked when the request runs (an invalid one ends
        # in the error file), as the hosted API does with Messages batches.
        out.params.append(wrap_chat_body(bytes(line.body)))
    if n == 0 or (not out.custom_ids and not out.errors):
        out.fail("empty_file", "The input file holds no requests", None)
    if len(out.custom_ids) > MAX_LINES:
        out.fail("too_many_requests", f"A batch holds at most {MAX_LINES:,} requests", None)
    return out


def output_line(result: dict[str, Any]) -> tuple[bool, bytes]:
    """A results line (Messages) as an OpenAI batch output line; (succeeded?, line)."""
    custom_id = result["custom_id"]
    outcome = result["result"]
    kind = outcome.get("type")
    response: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    if kind == "succeeded":
        message = msgspec.convert(outcome["message"], Message)
        body = chat_completion(message, message.model)
        response = {"status_code": 200, "request_id": ids.request_id(), "body": body}
    elif kind == "errored":
        detail = outcome["error"]["error"]
        response = {
            "status_code": http_status_of(detail["type"]),
            "request_id": outcome["error"].get("request_id") or ids.request_id(),
            "body": {
                "error": {
                    "message": detail["message"],
                    "type": detail["type"],
                    "param": None,
                    "code": None,
                }
            },
        }
    elif kind == "canceled":
        error = {"code": "batch_cancelled", "message": "The batch was cancelled before this ran"}
    else:
        error = {"code": "batch_expired", "message": "The batch expired before this ran"}
    line = {
        "id": ids.batch_request_id(),
        "custom_id": custom_id,
        "response": response,
        "error": error,
    }
    return kind == "succeeded", _encoder.encode(line) + b"\n"


class OpenAIBatchService:
    def __init__(self, batches: BatchService, files: FileService) -> None:
        self.batches = batches
        self.store = batches.store
        self.files = files
        self.clock = batches.clock

    async def create(
        self,
        workspace_id: str,
        body: BatchCreateIn,
        *,
        api_key_id: str | None = None,
        queued_limit: int | None = None,
    ) -> Batch:
        if body.completion_window != "24h":
            raise InvalidRequest(
                "completion_window: only 24h is supported", param="completion_window"
            )
        if body.endpoint not in ENDPOINTS:
            raise InvalidRequest(
                f"endpoint: must be one of {', '.join(ENDPOINTS)}", param="endpoint"
            )
        _check_metadata(body.metadata)
        try:
            source = await self.files.get(workspace_id, body.input_file_id)
        except NotFound:
            raise InvalidRequest(
                f"input_file_id: no file {body.input_file_id!r}", param="input_file_id"
            ) from None
        if source.purpose != "batch":
            raise InvalidRequest(
                "input_file_id: the file must be uploaded with purpose batch", param="input_file_id"
            )
        if source.bytes > MAX_INPUT_BYTES:
            raise InvalidRequest(
                f"input_file_id: batch input files hold at most {MAX_INPUT_BYTES:,} bytes",
                param="input_file_id",
            )
        checked = await validate(lines_of(self.files.blobs.read(source.blob)), body.endpoint)
        now = self.clock.now()
        record = OpenAIBatchRecord(
            id=ids.openai_batch_id(),
            workspace_id=workspace_id,
            batch_id=None,
            endpoint=body.endpoint,
            input_file_id=source.id,
            completion_window=body.completion_window,
            metadata=json.dumps(body.metadata) if body.metadata is not None else None,
            errors=None,
            created_at=now,
        )
        batches = self.store.openai_batches
        if checked.errors:
            failed = dataclasses.replace(
                record, errors=_encoder.encode(checked.errors).decode(), failed_at=now
            )
            await batches.create(failed)
            return to_wire(failed, None)
        holder: list[OpenAIBatchRecord] = []

        def running(batch_id: str) -> OpenAIBatchRecord:
            holder.append(dataclasses.replace(record, batch_id=batch_id))
            return holder[0]

        created = await self.batches.store_batch(
            workspace_id,
            checked.custom_ids,
            checked.params,
            api_key_id=api_key_id,
            queued_limit=queued_limit,
            dialect="openai",
            openai=running,
        )
        record = holder[0]
        return to_wire(record, created)

    async def _get(
        self, workspace_id: str, batch_id: str
    ) -> tuple[OpenAIBatchRecord, BatchRecord | None]:
        found = await self.store.openai_batches.get(workspace_id, batch_id)
        if found is None:
            raise NotFound(f"No batch found with id '{batch_id}'", param="batch_id")
        return found

    async def retrieve(self, workspace_id: str, batch_id: str) -> Batch:
        return to_wire(*await self._get(workspace_id, batch_id))

    async def page(
        self, workspace_id: str, limit: int, after: str | None
    ) -> tuple[list[Batch], bool]:
        try:
            rows, more = await self.store.openai_batches.page(workspace_id, limit, after)
        except UnknownCursor:
            raise InvalidRequest(f"after: no batch with id {after!r}", param="after") from None
        return [to_wire(r, b) for r, b in rows], more

    async def cancel(self, workspace_id: str, batch_id: str) -> Batch:
        record, batch = await self._get(workspace_id, batch_id)
        if batch is not None and record.batch_id is not None:
            batch = await self.batches.cancel_record(workspace_id, record.batch_id)
        return to_wire(record, batch)

    async def finalize_ended(self) -> int:
        """Write the output and error files of every ended batch that lacks them."""
        done = 0
        for record, batch in await self.store.openai_batches.unfinalized():
            succeeded: list[bytes] = []
            failed: list[bytes] = []
            async for chunk in self.store.result_lines(batch):
                for raw in chunk.splitlines():
                    ok, line = output_line(msgspec.json.decode(raw))
                    (succeeded if ok else failed).append(line)
            output = await self._file(record, "output", succeeded)
            errors = await self._file(record, "error", failed)
            won = await self.store.openai_batches.finalize(
                record.id, output, errors, self.clock.now()
            )
            if not won:  # another worker finalized it first
                for file_id in (output, errors):
                    if file_id:
                        await self.files.delete(record.workspace_id, file_id)
            done += won
        return done

    async def _file(self, record: OpenAIBatchRecord, kind: str, lines: list[bytes]) -> str | None:
        if not lines:
            return None

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(lines), 1000):
                yield b"".join(lines[start : start + 1000])

        made = await self.files.create(
            record.workspace_id, f"{record.id}_{kind}.jsonl", "batch_output", chunks()
        )
        return made.id


def build_service(batches: BatchService, settings: Settings) -> OpenAIBatchService:
    """The OpenAI Batch service on the batches' store, with files on local disk beside it."""
    files = FileService(batches.store.files, LocalBlobs(settings.files_dir), batches.clock)
    return OpenAIBatchService(batches, files)


def after_batches_end(
    batches: BatchService, openai: OpenAIBatchService
) -> Callable[[], Awaitable[int]]:
    """What workers do when batches end: the OpenAI output files, then the webhooks."""
    sender = WebhookSender(batches.store.webhooks, batches.webhooks, batches.to_wire)

    async def run() -> int:
        return await openai.finalize_ended() + await sender.deliver_due()

    return run
