"""Where file bytes live: a small interface, and a directory on local disk behind it.

An S3-compatible object store can implement the same four methods. Writes go to
a temporary name first and are renamed into place, so a crash never leaves a
half-written blob under a real key.
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
        """Store the bytes; return (key, size)."""

    def read(self, key: str) -> AsyncIterator[bytes]: ...

    async def delete(self, key: str) -> None: ...


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
