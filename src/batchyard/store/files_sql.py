"""File records, written once for both SQL stores."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from batchyard.store.lifecycle import Tx
from batchyard.store.records import FileRecord, QuotaExceeded
from batchyard.store.sql_runner import Row, SqlRunner, page

T = TypeVar("T")
_COLUMNS = "id, workspace_id, filename, purpose, bytes, created_at, expires_at, blob"
_INSERT = f"INSERT INTO files ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_WORKSPACE_BYTES = "SELECT COALESCE(SUM(bytes), 0) FROM files WHERE workspace_id = ?"


def _file(row: Row) -> FileRecord:
    return FileRecord(*row)  # type: ignore[arg-type]


def _values(f: FileRecord) -> tuple[object, ...]:
    return (
        f.id,
        f.workspace_id,
        f.filename,
        f.purpose,
        f.bytes,
        f.created_at,
        f.expires_at,
        f.blob,
    )


class FilesDb(SqlRunner, Protocol):
    async def transact(
        self, body: Callable[[Tx], Coroutine[Any, Any, T]], *, durable: bool = False
    ) -> T: ...


class SqlFiles:
    def __init__(self, db: FilesDb) -> None:
        self.db = db

    async def create_file(self, f: FileRecord, quota: int | None = None) -> FileRecord:
        if quota is None:
            await self.db.write((_INSERT, _values(f)))
            return f

        async def checked(tx: Tx) -> FileRecord:
            # One quota check at a time per workspace, so two uploads cannot both pass.
            await tx.lock_workspace("files/" + f.workspace_id)
            row = await tx.fetchone(_WORKSPACE_BYTES, f.workspace_id)
            used = int(row[0]) if row else 0  # type: ignore[call-overload]
            if used + f.bytes > quota:
                raise QuotaExceeded(quota, used)
            await tx.execute(_INSERT, *_values(f))
            return f

        return await self.db.transact(checked, durable=True)

    async def workspace_bytes(self, workspace_id: str) -> int:
        row = await self.db.fetchone(_WORKSPACE_BYTES, workspace_id)
        return int(row[0]) if row else 0  # type: ignore[call-overload]

    async def expired_files(self, now: float, limit: int) -> list[FileRecord]:
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM files WHERE expires_at <= ? ORDER BY seq LIMIT ?",
            now,
            limit,
        )
        return [_file(r) for r in rows]

    async def get_file(self, workspace_id: str, file_id: str) -> FileRecord | None:
        row = await self.db.fetchone(
            f"SELECT {_COLUMNS} FROM files WHERE id = ? AND workspace_id = ?",
            file_id,
            workspace_id,
        )
        return _file(row) if row else None

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
        where, params = "workspace_id = ?", [workspace_id]
        if purpose is not None:
            where += " AND purpose = ?"
            params.append(purpose)
        rows, more = await page(
            self.db,
            "files",
            _COLUMNS,
            where,
            params,
            limit,
            after_id,
            before_id,
            ascending=ascending,
        )
        return [_file(r) for r in rows], more

    async def delete_file(self, workspace_id: str, file_id: str) -> FileRecord | None:
        record = await self.get_file(workspace_id, file_id)
        if record is not None:
            await self.db.write(
                ("DELETE FROM files WHERE id = ? AND workspace_id = ?", (file_id, workspace_id))
            )
        return record
