"""Files API use cases: upload (streamed to the blob store), read, list, delete."""

from __future__ import annotations

from collections.abc import AsyncIterator

from batchyard import ids
from batchyard.clock import Clock
from batchyard.errors import InvalidRequest, NotFound
from batchyard.services.blobs import BlobStore
from batchyard.store.port import FileStore
from batchyard.store.records import FileRecord, UnknownCursor
from batchyard.wire.openai import FileObject

MAX_FILE_BYTES = 512 * 1024 * 1024


def not_found(file_id: str) -> NotFound:
    return NotFound(f"No such File object: {file_id}", param="file_id")


def to_wire(f: FileRecord) -> FileObject:
    return FileObject(
        id=f.id,
        bytes=f.bytes,
        created_at=int(f.created_at),
        filename=f.filename,
        purpose=f.purpose,
        expires_at=int(f.expires_at) if f.expires_at is not None else None,
    )


class FileService:
    def __init__(self, store: FileStore, blobs: BlobStore, clock: Clock) -> None:
        self.store = store
        self.blobs = blobs
        self.clock = clock

    async def create(
        self,
        workspace_id: str,
        filename: str,
        purpose: str,
        chunks: AsyncIterator[bytes],
        expires_after: float | None = None,
    ) -> FileRecord:
        key, size = await self.blobs.put(chunks)
        now = self.clock.now()
        record = FileRecord(
            id=ids.file_id(),
            workspace_id=workspace_id,
            filename=filename,
            purpose=purpose,
            bytes=size,
            created_at=now,
            expires_at=now + expires_after if expires_after is not None else None,
            blob=key,
        )
        try:
            return await self.store.create_file(record)
        except BaseException:
            await self.blobs.delete(key)  # no blob without its record
            raise

    async def get(self, workspace_id: str, file_id: str) -> FileRecord:
        record = await self.store.get_file(workspace_id, file_id)
        if record is None or (
            record.expires_at is not None and record.expires_at <= self.clock.now()
        ):
            raise not_found(file_id)
        return record

    async def list(
        self, workspace_id: str, limit: int, after: str | None, ascending: bool, purpose: str | None
    ) -> tuple[list[FileRecord], bool]:
        try:
            return await self.store.list_files(
                workspace_id, limit, after, ascending=ascending, purpose=purpose
            )
        except UnknownCursor:
            raise InvalidRequest(f"after: no file with id {after!r}", param="after") from None

    async def delete(self, workspace_id: str, file_id: str) -> FileRecord:
        record = await self.store.delete_file(workspace_id, file_id)
        if record is None:
            raise not_found(file_id)
        await self.blobs.delete(record.blob)
        return record

    async def content(self, workspace_id: str, file_id: str) -> AsyncIterator[bytes]:
        record = await self.get(workspace_id, file_id)
        return self.blobs.read(record.blob)
