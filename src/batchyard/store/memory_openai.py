"""The OpenAI dialect's rows in the in-memory store: file records, the OpenAI Batch
API's records of batches and the Responses API's stored responses."""

from __future__ import annotations

import dataclasses
import itertools

from batchyard.store.memory_rows import BatchTable, DuplicateId, insert, page, record_of
from batchyard.store.records import (
    BatchRecord,
    FileRecord,
    OpenAIBatchRecord,
    QuotaExceeded,
    ResponseRecord,
)


class MemoryFiles:
    def __init__(self) -> None:
        self._files: dict[str, FileRecord] = {}

    async def create_file(self, record: FileRecord, quota: int | None = None) -> FileRecord:
        if quota is not None:
            used = self._bytes_of(record.workspace_id)
            if used + record.bytes > quota:
                raise QuotaExceeded(quota, used)
        insert(self._files, record.id, record)
        return record

    async def workspace_bytes(self, workspace_id: str) -> int:
        return self._bytes_of(workspace_id)

    def _bytes_of(self, workspace_id: str) -> int:
        return sum(f.bytes for f in self._files.values() if f.workspace_id == workspace_id)

    async def expired_files(self, now: float, limit: int) -> list[FileRecord]:
        due = (f for f in self._files.values() if f.expires_at is not None and f.expires_at <= now)
        return list(itertools.islice(due, limit))

    async def get_file(self, workspace_id: str, file_id: str) -> FileRecord | None:
        found = self._files.get(file_id)
        return found if found is not None and found.workspace_id == workspace_id else None

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
        rows = [
            f
            for f in self._files.values()
            if f.workspace_id == workspace_id and (purpose is None or f.purpose == purpose)
        ]
        return page(rows, lambda f: f.id, limit, after_id, before_id, ascending=ascending)

    async def delete_file(self, workspace_id: str, file_id: str) -> FileRecord | None:
        found = await self.get_file(workspace_id, file_id)
        if found is not None:
            del self._files[file_id]
        return found


class MemoryOpenAIBatches:
    def __init__(self, batches: BatchTable) -> None:
        self._batches = batches
        self._records: dict[str, OpenAIBatchRecord] = {}
        self.by_batch: dict[str, str] = {}
        """A batch's id → the id of the OpenAI Batch API's record of it."""

    def check_new(self, record: OpenAIBatchRecord) -> None:
        """Raise DuplicateId if `record` could not be inserted (before anything is written)."""
        if record.id in self._records:
            raise DuplicateId(record.id)

    def insert(self, record: OpenAIBatchRecord) -> None:
        insert(self._records, record.id, record)
        if record.batch_id is not None:
            self.by_batch.setdefault(record.batch_id, record.id)

    async def create(self, record: OpenAIBatchRecord) -> OpenAIBatchRecord:
        self.insert(record)
        return record

    def _with_batch(self, r: OpenAIBatchRecord) -> tuple[OpenAIBatchRecord, BatchRecord | None]:
        return r, record_of(self._batches.by_id.get(r.batch_id or ""))

    async def get(
        self, workspace_id: str, openai_id: str
    ) -> tuple[OpenAIBatchRecord, BatchRecord | None] | None:
        found = self._records.get(openai_id)
        if found is None or found.workspace_id != workspace_id:
            return None
        return self._with_batch(found)

    async def page(
        self, workspace_id: str, limit: int, after: str | None
    ) -> tuple[list[tuple[OpenAIBatchRecord, BatchRecord | None]], bool]:
        rows = [r for r in self._records.values() if r.workspace_id == workspace_id]
        got, more = page(rows, lambda r: r.id, limit, after, None)
        return [self._with_batch(r) for r in got], more

    async def unfinalized(self, limit: int = 20) -> list[tuple[OpenAIBatchRecord, BatchRecord]]:
        found: list[tuple[OpenAIBatchRecord, BatchRecord]] = []
        for r in self._records.values():
            batch = self._batches.by_id.get(r.batch_id or "")
            if r.finalized_at is None and batch is not None and batch.ended:
                found.append((r, batch.record()))
        return found[:limit]

    async def finalize(
        self, openai_id: str, output_file_id: str | None, error_file_id: str | None, now: float
    ) -> bool:
        found = self._records.get(openai_id)
        if found is None or found.finalized_at is not None:
            return False
        self._records[openai_id] = dataclasses.replace(
            found, output_file_id=output_file_id, error_file_id=error_file_id, finalized_at=now
        )
        return True


class MemoryResponses:
    def __init__(self) -> None:
        self._responses: dict[str, ResponseRecord] = {}

    async def put_response(self, record: ResponseRecord) -> None:
        insert(self._responses, record.id, record)

    async def get_response(self, workspace_id: str, response_id: str) -> ResponseRecord | None:
        found = self._responses.get(response_id)
        return found if found is not None and found.workspace_id == workspace_id else None

    async def delete_response(self, workspace_id: str, response_id: str) -> bool:
        if await self.get_response(workspace_id, response_id) is None:
            return False
        del self._responses[response_id]
        return True
