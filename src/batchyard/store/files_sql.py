"""File records, written once for both SQL stores."""

from __future__ import annotations

from batchyard.store.records import FileRecord
from batchyard.store.sql_runner import Row, SqlRunner, page

_COLUMNS = "id, workspace_id, filename, purpose, bytes, created_at, expires_at, blob"


def _file(row: Row) -> FileRecord:
    return FileRecord(*row)  # type: ignore[arg-type]


class SqlFiles:
    def __init__(self, db: SqlRunner) -> None:
        self.db = db

    async def create_file(self, f: FileRecord) -> FileRecord:
        await self.db.write(
            (
                f"INSERT INTO files ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    f.id,
                    f.workspace_id,
                    f.filename,
                    f.purpose,
                    f.bytes,
                    f.created_at,
                    f.expires_at,
                    f.blob,
                ),
            )
        )
        return f

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
