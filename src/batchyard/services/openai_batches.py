"""The OpenAI Batch API on the one store: an input file becomes a batch whose requests
run on the same workers and engines as any other; when it ends, its results become
OpenAI output and error files.

- `create` validates every line of the input file the way OpenAI does (a bad file
  fails the batch with `errors.data[]` naming the lines; `openai_batch_input`) and
  translates each Chat Completions body into the Messages request the workers run;
  the batch and its OpenAI record are written in one transaction.
- The Batch object's status is derived from the batch: in_progress, cancelling,
  finalizing (ended, files not written yet), then completed / cancelled / expired.
- `finalize_ended` (run by workers) writes the output and error files
  (`openai_batch_output`), streamed from the results to the blob store a chunk at a time.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator

import msgspec

from batchyard import ids
from batchyard.errors import InvalidRequest, NotFound
from batchyard.services.eta import Eta
from batchyard.services.files import FileService
from batchyard.services.message_batches import BatchService
from batchyard.services.openai_batch_input import (
    ENDPOINTS,
    MAX_INPUT_BYTES,
    lines_of,
    validate,
)
from batchyard.services.openai_batch_output import output_chunks
from batchyard.store.blobs import CHUNK, rechunk
from batchyard.store.records import BatchRecord, FileRecord, OpenAIBatchRecord, UnknownCursor
from batchyard.wire.openai import (
    Batch,
    BatchCreateIn,
    BatchError,
    BatchErrors,
    BatchRequestCounts,
    OpenAIBatchEta,
)

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


def to_wire(record: OpenAIBatchRecord, batch: BatchRecord | None, eta: Eta | None = None) -> Batch:
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
        batchyard_eta=_eta(eta) if eta is not None and status == "in_progress" else None,
    )


def _eta(eta: Eta) -> OpenAIBatchEta:
    rate = round(eta.rate, 4) if eta.rate is not None else None
    return OpenAIBatchEta(_ts(eta.ends_at), rate, eta.at_risk)


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


class OpenAIBatchService:
    chunk = CHUNK
    """The bytes of output file per blob write."""

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
        source = await self._input_file(workspace_id, body.input_file_id)
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
        return await self._live(record, created)

    async def _input_file(self, workspace_id: str, file_id: str) -> FileRecord:
        try:
            source = await self.files.get(workspace_id, file_id)
        except NotFound:
            raise InvalidRequest(
                f"input_file_id: no file {file_id!r}", param="input_file_id"
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
        return source

    async def _get(
        self, workspace_id: str, batch_id: str
    ) -> tuple[OpenAIBatchRecord, BatchRecord | None]:
        found = await self.store.openai_batches.get(workspace_id, batch_id)
        if found is None:
            raise NotFound(f"No batch found with id '{batch_id}'", param="batch_id")
        return found

    async def retrieve(self, workspace_id: str, batch_id: str) -> Batch:
        return await self._live(*await self._get(workspace_id, batch_id))

    async def page(
        self, workspace_id: str, limit: int, after: str | None
    ) -> tuple[list[Batch], bool]:
        try:
            rows, more = await self.store.openai_batches.page(workspace_id, limit, after)
        except UnknownCursor:
            raise InvalidRequest(f"after: no batch with id {after!r}", param="after") from None
        etas = await self.batches.eta.of_many(b for _, b in rows if b is not None)
        return [to_wire(r, b, etas.get(b.id) if b else None) for r, b in rows], more

    async def cancel(self, workspace_id: str, batch_id: str) -> Batch:
        record, batch = await self._get(workspace_id, batch_id)
        if batch is not None and record.batch_id is not None:
            batch = await self.batches.cancel_record(workspace_id, record.batch_id)
        return await self._live(record, batch)

    async def _live(self, record: OpenAIBatchRecord, batch: BatchRecord | None) -> Batch:
        """The Batch object, with its ETA while it runs."""
        eta = await self.batches.eta.of(batch) if batch is not None else None
        return to_wire(record, batch, eta)

    async def finalize_ended(self) -> int:
        """Write the output and error files of every ended batch that lacks them."""
        done = 0
        for record, batch in await self.store.openai_batches.unfinalized():
            output = await self._file(record, batch, "output")
            errors = await self._file(record, batch, "error")
            won = await self.store.openai_batches.finalize(
                record.id, output, errors, self.clock.now()
            )
            if not won:  # another worker finalized it first
                for file_id in (output, errors):
                    if file_id:
                        await self.files.delete(record.workspace_id, file_id)
            done += won
        return done

    async def _file(self, record: OpenAIBatchRecord, batch: BatchRecord, kind: str) -> str | None:
        """The batch's output (or error) file, streamed from its results to the blob store
        (one pass over the results each); None when it would be empty."""
        results = self.store.result_lines(batch)
        lines = rechunk(output_chunks(results, kind == "output", record.endpoint), self.chunk)
        first = await anext(lines, None)
        if first is None:
            return None

        async def chunks() -> AsyncIterator[bytes]:
            yield first
            async for chunk in lines:
                yield chunk

        made = await self.files.create(
            record.workspace_id,
            f"{record.id}_{kind}.jsonl",
            "batch_output",
            chunks(),
            within_quota=False,
        )
        return made.id
