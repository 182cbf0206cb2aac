"""Files API use cases: upload (streamed to the blob store), read, list, delete; the
workspace's storage quota (`quota_bytes`) and the deletion of expired files.

One store of files serves both dialects: `to_wire` shapes a record for the OpenAI
SDK, `to_metadata` for the Anthropic one. Every file is downloadable by either.
"""

from __future__ import annotations

import builtins
import mimetypes
import posixpath
from collections.abc import AsyncIterator

from batchyard import ids
from batchyard.clock import Clock, to_datetime, to_datetime_or_none
from batchyard.errors import InvalidRequest, NotFound, RequestTooLarge
from batchyard.store.blobs import BlobStore
from batchyard.store.port import FileStore
from batchyard.store.records import FileRecord, QuotaExceeded, UnknownCursor
from batchyard.wire.files import FileMetadata
from batchyard.wire.openai import FileObject

MAX_FILE_BYTES = 512 * 1024 * 1024
"""The OpenAI Files API's limit (512 MB)."""
ANTHROPIC_MAX_FILE_BYTES = 500 * 1024 * 1024
"""The Anthropic Files API's limit (500 MB)."""
ANTHROPIC_PURPOSE = "user_data"
"""The OpenAI `purpose` of a file uploaded through the Anthropic API (which has none)."""
PAGE_PREFIX = "page_"
EXPIRED_PAGE = 100

_MIME = mimetypes.MimeTypes()  # the built-in table only, not the host's /etc/mime.types
_MIME.add_type("application/jsonl", ".jsonl")
_MIME.add_type("text/markdown", ".md")


def not_found(file_id: str) -> NotFound:
    return NotFound(f"No such File object: {file_id}", param="file_id")


def mime_type_of(filename: str) -> str:
    """The MIME type a file's name says (`application/octet-stream` when it says none)."""
    guessed, _ = _MIME.guess_type(filename, strict=False)
    return guessed or "application/octet-stream"


def anthropic_filename(filename: str | None) -> str:
    """The final path component of an upload's name, as the Anthropic API keeps it."""
    base = posixpath.basename((filename or "").replace("\\", "/"))
    return base or "unnamed"


def over_quota(quota: int, used: int) -> RequestTooLarge:
    return RequestTooLarge(
        f"Storing this file would exceed the workspace's file storage quota of {quota:,}"
        f" bytes ({used:,} in use); delete files to make room",
        param="file",
    )


def too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(f"File exceeds the maximum size of {limit:,} bytes", param="file")


async def _within(chunks: AsyncIterator[bytes], room: int, quota: int) -> AsyncIterator[bytes]:
    """`chunks`, raising over_quota as soon as they pass `room` bytes (an upload stops
    there, not at its end)."""
    seen = 0
    async for chunk in chunks:
        seen += len(chunk)
        if seen > room:
            raise over_quota(quota, quota - room)
        yield chunk


def to_wire(f: FileRecord) -> FileObject:
    return FileObject(
        id=f.id,
        bytes=f.bytes,
        created_at=int(f.created_at),
        filename=f.filename,
        purpose=f.purpose,
        expires_at=int(f.expires_at) if f.expires_at is not None else None,
    )


def to_metadata(f: FileRecord) -> FileMetadata:
    """The Anthropic dialect's view; `downloadable` always (batchyard is self-hosted, so
    uploads can be read back too, unlike on the hosted API)."""
    return FileMetadata(
        id=f.id,
        filename=f.filename,
        mime_type=mime_type_of(f.filename),
        size_bytes=f.bytes,
        created_at=to_datetime(f.created_at),
        downloadable=True,
        expires_at=to_datetime_or_none(f.expires_at),
    )


def page_token(file_id: str) -> str:
    """The opaque `next_page` cursor after `file_id`."""
    return PAGE_PREFIX + file_id


def after_of(token: str) -> str:
    """The file id a `page` cursor continues after."""
    if not token.startswith(PAGE_PREFIX) or len(token) == len(PAGE_PREFIX):
        raise InvalidRequest(f"page: {token!r} is not a page cursor", param="page")
    return token[len(PAGE_PREFIX) :]


class FileService:
    def __init__(
        self,
        store: FileStore,
        blobs: BlobStore,
        clock: Clock,
        max_bytes: int | None = None,
        quota_bytes: int | None = None,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.clock = clock
        self.max_bytes = max_bytes
        """The operator's cap (`--max-file-bytes`), below each dialect's own limit."""
        self.quota_bytes = quota_bytes
        """The most bytes one workspace's files may hold (`--file-quota-bytes`; None: no cap)."""

    def limit(self, dialect: str) -> int:
        """The largest file a caller of `dialect` may upload."""
        own = ANTHROPIC_MAX_FILE_BYTES if dialect == "anthropic" else MAX_FILE_BYTES
        return min(own, self.max_bytes) if self.max_bytes is not None else own

    async def upload_limit(self, workspace_id: str, dialect: str) -> tuple[int, RequestTooLarge]:
        """The most bytes an upload into `workspace_id` may have now, and the error past
        them: the size cap, or the room left in the quota where that is less."""
        limit = self.limit(dialect)
        if self.quota_bytes is not None:
            used = await self.store.workspace_bytes(workspace_id)
            if self.quota_bytes - used < limit:
                return max(0, self.quota_bytes - used), over_quota(self.quota_bytes, used)
        return limit, too_large(limit)

    async def create(
        self,
        workspace_id: str,
        filename: str,
        purpose: str,
        chunks: AsyncIterator[bytes],
        expires_after: float | None = None,
        *,
        within_quota: bool = True,
    ) -> FileRecord:
        """Raises RequestTooLarge (nothing kept) if the workspace would go over its quota;
        files made with `within_quota=False` (a batch's output) count, but are never refused."""
        quota = self.quota_bytes if within_quota else None
        if quota is not None:
            used = await self.store.workspace_bytes(workspace_id)
            chunks = _within(chunks, quota - used, quota)
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
            return await self.store.create_file(record, quota)
        except QuotaExceeded as exc:  # another upload took the room meanwhile
            await self.blobs.delete(key)
            raise over_quota(exc.quota, exc.used) from None
        except BaseException:
            await self.blobs.delete(key)  # no blob without its record
            raise

    async def get(self, workspace_id: str, file_id: str) -> FileRecord:
        record = await self.store.get_file(workspace_id, file_id)
        if record is None or self._expired(record):
            raise not_found(file_id)
        return record

    def _expired(self, record: FileRecord) -> bool:
        return record.expires_at is not None and record.expires_at <= self.clock.now()

    async def list(
        self,
        workspace_id: str,
        limit: int,
        after: str | None,
        ascending: bool,
        purpose: str | None,
        before: str | None = None,
        *,
        after_param: str = "after",
    ) -> tuple[list[FileRecord], bool]:
        """Raises InvalidRequest naming `after_param` (or `before_id`) for an unknown cursor."""
        try:
            return await self.store.list_files(
                workspace_id, limit, after, ascending=ascending, purpose=purpose, before_id=before
            )
        except UnknownCursor as exc:
            param = "before_id" if before is not None else after_param
            raise InvalidRequest(f"{param}: no file with id {str(exc)!r}", param=param) from None

    async def some(
        self, workspace_id: str, file_ids: builtins.list[str]
    ) -> builtins.list[FileRecord]:
        """The files of `file_ids` this workspace has (the others left out), newest first."""
        found = [await self.store.get_file(workspace_id, i) for i in dict.fromkeys(file_ids)]
        kept = [r for r in found if r is not None and not self._expired(r)]
        return sorted(kept, key=lambda r: r.created_at, reverse=True)

    async def delete(self, workspace_id: str, file_id: str) -> FileRecord:
        record = await self.store.delete_file(workspace_id, file_id)
        if record is None:
            raise not_found(file_id)
        await self.blobs.delete(record.blob)
        return record

    async def delete_expired(self) -> int:
        """Delete the files whose expiry has passed, bytes and records (the bytes first: a
        crash between leaves an expired record, deleted on the next pass). Returns how many."""
        done = 0
        while True:
            due = await self.store.expired_files(self.clock.now(), EXPIRED_PAGE)
            for record in due:
                await self.blobs.delete(record.blob)
                done += await self.store.delete_file(record.workspace_id, record.id) is not None
            if len(due) < EXPIRED_PAGE:
                return done

    async def content(self, workspace_id: str, file_id: str) -> AsyncIterator[bytes]:
        return (await self.download(workspace_id, file_id))[1]

    async def download(
        self, workspace_id: str, file_id: str
    ) -> tuple[FileRecord, AsyncIterator[bytes]]:
        """The file's record and its bytes (raises NotFound first)."""
        record = await self.get(workspace_id, file_id)
        return record, self.blobs.read(record.blob)
