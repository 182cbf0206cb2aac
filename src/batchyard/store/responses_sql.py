"""Stored objects of the OpenAI Responses API, written once for both SQL stores."""

from __future__ import annotations

from batchyard.store.records import ResponseRecord
from batchyard.store.sql_runner import Row, SqlRunner

_COLUMNS = "id, workspace_id, created_at, body, input_items, previous_response_id"


def _response(row: Row) -> ResponseRecord:
    return ResponseRecord(*row)  # type: ignore[arg-type]


class SqlResponses:
    def __init__(self, db: SqlRunner) -> None:
        self.db = db

    async def put_response(self, r: ResponseRecord) -> None:
        await self.db.write(
            (
                f"INSERT INTO responses ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    r.id,
                    r.workspace_id,
                    r.created_at,
                    r.body,
                    r.input_items,
                    r.previous_response_id,
                ),
            )
        )

    async def get_response(self, workspace_id: str, response_id: str) -> ResponseRecord | None:
        row = await self.db.fetchone(
            f"SELECT {_COLUMNS} FROM responses WHERE id = ? AND workspace_id = ?",
            response_id,
            workspace_id,
        )
        return _response(row) if row is not None else None

    async def delete_response(self, workspace_id: str, response_id: str) -> bool:
        [gone] = await self.db.write(
            (
                "DELETE FROM responses WHERE id = ? AND workspace_id = ? RETURNING id",
                (response_id, workspace_id),
            )
        )
        return gone is not None
