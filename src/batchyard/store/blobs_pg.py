"""File bytes in PostgreSQL (`file_chunks`), so API and worker processes on one database
need no shared disk: the `store.blobs.BlobStore` interface over rows of CHUNK bytes.

An upload writes its chunks as they arrive, in one transaction on one connection
(a blob is all there or not at all, and memory holds one chunk); a download reads
them one query per chunk, so a slow reader holds no connection between chunks.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, cast

from batchyard.store.blobs import CHUNK, rechunk

if TYPE_CHECKING:
    from batchyard.store.postgres import Conn, PostgresStore

_INSERT = "INSERT INTO file_chunks (blob, n, data) VALUES ($1, $2, $3)"
_CHUNK = "SELECT data FROM file_chunks WHERE blob = ? AND n = ?"
_SIZE = "SELECT SUM(LENGTH(data)) FROM file_chunks WHERE blob = ?"
_DELETE = "DELETE FROM file_chunks WHERE blob = ?"


class PostgresBlobs:
    def __init__(self, store: PostgresStore, chunk: int = CHUNK) -> None:
        self.store = store
        self.chunk = chunk

    async def put(self, chunks: AsyncIterator[bytes]) -> tuple[str, int]:
        key = uuid.uuid4().hex

        async def write(conn: Conn) -> int:
            size = 0
            async with conn.transaction():  # durable: synchronous_commit as configured
                n = 0
                async for piece in rechunk(chunks, self.chunk):
                    await conn.execute(_INSERT, key, n, piece)
                    n += 1
                    size += len(piece)
            return size

        return key, await self.store.on_connection(write)

    async def read(self, key: str) -> AsyncIterator[bytes]:
        for n in itertools.count():
            row = await self.store.fetchone(_CHUNK, key, n)
            if row is None:
                return
            yield cast(bytes, row[0])

    async def delete(self, key: str) -> None:
        await self.store.write((_DELETE, (key,)))

    async def size(self, key: str) -> int | None:
        row = await self.store.fetchone(_SIZE, key)
        return int(row[0]) if row and row[0] is not None else None  # type: ignore[call-overload]
