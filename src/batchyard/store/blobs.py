"""Where file bytes live: a small interface (`BlobStore`), with a directory on local disk
(`LocalBlobs`, beside a SQLite database) and process memory (`MemoryBlobs`) behind it;
on PostgreSQL the bytes are rows of the database (`store.blobs_pg.PostgresBlobs`).

An S3-compatible object store can implement the same four methods. Bytes stream in
and out a chunk at a time, never whole. A blob is all there or not at all: local
writes go to a temporary name first and are renamed into place, so a crash never
leaves a half-written blob under a real key.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO, Protocol

import anyio
import anyio.to_thread

CHUNK = 1024 * 1024


class BlobStore(Protocol):
    async def put(self, chunks: AsyncIterator[bytes]) -> tuple[str, int]:
        """Store the bytes under a new key; return (key, size). If `chunks` raises,
        nothing is kept and the exception propagates."""

    def read(self, key: str) -> AsyncIterator[bytes]:
        """The bytes, a chunk at a time."""

    async def delete(self, key: str) -> None:
        """Forget the bytes (a missing key is fine)."""

    async def size(self, key: str) -> int | None:
        """The blob's size in bytes; None when there is none under `key`."""


async def rechunk(chunks: AsyncIterator[bytes], size: int = CHUNK) -> AsyncIterator[bytes]:
    """`chunks` as pieces of exactly `size` bytes (the last one shorter, none empty)."""
    pending = bytearray()
    async for piece in chunks:
        pending += piece
        while len(pending) >= size:
            yield bytes(pending[:size])
            del pending[:size]
    if pending:
        yield bytes(pending)


class MemoryBlobs:
    """Blobs in a dict, for tests and the `memory://` store: `read` yields `chunk` bytes
    at a time (small chunks split lines, as reads of a large file do)."""

    def __init__(self, chunk: int = CHUNK) -> None:
        self.chunk = chunk
        self.blobs: dict[str, bytes] = {}

    async def put(self, chunks: AsyncIterator[bytes]) -> tuple[str, int]:
        data = b"".join([c async for c in chunks])
        key = uuid.uuid4().hex
        self.blobs[key] = data
        return key, len(data)

    async def read(self, key: str) -> AsyncIterator[bytes]:
        data = self.blobs[key]
        for start in range(0, len(data), self.chunk):
            yield data[start : start + self.chunk]

    async def delete(self, key: str) -> None:
        self.blobs.pop(key, None)

    async def size(self, key: str) -> int | None:
        found = self.blobs.get(key)
        return len(found) if found is not None else None


class LocalBlobs:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / key

    async def put(self, chunks: AsyncIterator[bytes]) -> tuple[str, int]:
        key = uuid.uuid4().hex
        path = self._path(key)
        tmp = path.with_suffix(".part")

        def open_tmp() -> BinaryIO:
            path.parent.mkdir(parents=True, exist_ok=True)
            return open(tmp, "wb")

        out = await anyio.to_thread.run_sync(open_tmp)
        size = 0
        try:
            async for chunk in chunks:
                size += len(chunk)
                await anyio.to_thread.run_sync(out.write, chunk)

            def finish() -> None:
                out.flush()
                os.fsync(out.fileno())
                out.close()
                tmp.rename(path)

            await anyio.to_thread.run_sync(finish)
        except BaseException:
            out.close()
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return key, size

    async def read(self, key: str) -> AsyncIterator[bytes]:
        f = await anyio.to_thread.run_sync(open, self._path(key), "rb")
        try:
            while chunk := await anyio.to_thread.run_sync(f.read, CHUNK):
                yield chunk
        finally:
            f.close()

    async def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await anyio.to_thread.run_sync(self._path(key).unlink)

    async def size(self, key: str) -> int | None:
        try:
            return (await anyio.to_thread.run_sync(self._path(key).stat)).st_size
        except FileNotFoundError:
            return None
