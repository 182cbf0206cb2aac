"""Workspaces, API keys and usage counters in the SQLite store."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING

from batchyard.store.base import ApiKeyRecord, RateLimits, UsageRow, WorkspaceRecord
from batchyard.store.sqlite_paging import Row, page

if TYPE_CHECKING:
    from batchyard.store.sqlite import SQLiteStore

_WORKSPACE_COLUMNS = (
    "id, name, display_color, created_at, archived_at,"
    " requests_per_minute, batch_requests_per_minute, batch_queued_requests"
)
_KEY_COLUMNS = "id, kind, workspace_id, name, hint, status, created_at, expires_at"
_USAGE_UPSERT = (
    "INSERT INTO usage (bucket, workspace_id, api_key_id, model, service_tier, requests,"
    " input_tokens, output_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (bucket, workspace_id, api_key_id, model, service_tier) DO UPDATE SET"
    " requests = requests + excluded.requests,"
    " input_tokens = input_tokens + excluded.input_tokens,"
    " output_tokens = output_tokens + excluded.output_tokens"
)


def add_usage(conn: sqlite3.Connection, rows: Sequence[UsageRow]) -> None:
    """Add `rows` to the hourly counters (inside the caller's write transaction)."""
    if rows:
        conn.executemany(
            _USAGE_UPSERT,
            (
                (
                    r.bucket,
                    r.workspace_id,
                    r.api_key_id,
                    r.model,
                    r.service_tier,
                    r.requests,
                    r.input_tokens,
                    r.output_tokens,
                )
                for r in rows
            ),
        )


def _workspace(row: Row) -> WorkspaceRecord:
    wid, name, color, created, archived, rpm, batch_rpm, queued = row
    return WorkspaceRecord(
        wid,  # type: ignore[arg-type]
        name,  # type: ignore[arg-type]
        color,  # type: ignore[arg-type]
        created,  # type: ignore[arg-type]
        archived,  # type: ignore[arg-type]
        RateLimits(rpm, batch_rpm, queued),  # type: ignore[arg-type]
    )


def _key(row: Row) -> ApiKeyRecord:
    return ApiKeyRecord(*row)  # type: ignore[arg-type]


class SQLiteTenancy:
    def __init__(self, db: SQLiteStore) -> None:
        self.db = db

    # --- workspaces -------------------------------------------------------------

    async def create_workspace(self, workspace: WorkspaceRecord) -> WorkspaceRecord:
        return await self.db.run(self._create_workspace, workspace)

    def _create_workspace(self, w: WorkspaceRecord) -> WorkspaceRecord:
        with self.db.transaction(durable=True) as conn:
            conn.execute(
                f"INSERT INTO workspaces ({_WORKSPACE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    w.id,
                    w.name,
                    w.display_color,
                    w.created_at,
                    w.archived_at,
                    w.limits.requests_per_minute,
                    w.limits.batch_requests_per_minute,
                    w.limits.batch_queued_requests,
                ),
            )
        return w

    async def get_workspace(self, workspace_id: str) -> WorkspaceRecord | None:
        return await self.db.run(self._one_workspace, "id = ?", workspace_id)

    async def workspace_by_name(self, name: str) -> WorkspaceRecord | None:
        return await self.db.run(
            self._one_workspace, "name = ? AND archived_at IS NULL ORDER BY seq", name
        )

    def _one_workspace(
        self, where: str, value: str, conn: sqlite3.Connection | None = None
    ) -> WorkspaceRecord | None:
        row = (
            (conn or self.db.reader())
            .execute(f"SELECT {_WORKSPACE_COLUMNS} FROM workspaces WHERE {where}", (value,))
            .fetchone()
        )
        return _workspace(row) if row else None

    async def list_workspaces(
        self, limit: int, after_id: str | None, before_id: str | None, include_archived: bool
    ) -> tuple[list[WorkspaceRecord], bool]:
        where = "1 = 1" if include_archived else "archived_at IS NULL"
        rows, has_more = await self.db.run(
            self._page,
            "workspaces",
            _WORKSPACE_COLUMNS,
            where,
            (),
            limit,
            after_id,
            before_id,
        )
        return [_workspace(r) for r in rows], has_more

    def _page(
        self,
        table: str,
        columns: str,
        where: str,
        params: Sequence[object],
        limit: int,
        after_id: str | None,
        before_id: str | None,
    ) -> tuple[list[Row], bool]:
        return page(self.db.reader(), table, columns, where, params, limit, after_id, before_id)

    async def update_workspace(
        self, workspace_id: str, name: str | None, limits: RateLimits | None
    ) -> WorkspaceRecord | None:
        return await self.db.run(self._update_workspace, workspace_id, name, limits)

    def _update_workspace(
        self, workspace_id: str, name: str | None, limits: RateLimits | None
    ) -> WorkspaceRecord | None:
        with self.db.transaction(durable=True) as conn:
            if name is not None:
                conn.execute("UPDATE workspaces SET name = ? WHERE id = ?", (name, workspace_id))
            if limits is not None:
                conn.execute(
                    "UPDATE workspaces SET requests_per_minute = ?, batch_requests_per_minute = ?,"
                    " batch_queued_requests = ? WHERE id = ?",
                    (
                        limits.requests_per_minute,
                        limits.batch_requests_per_minute,
                        limits.batch_queued_requests,
                        workspace_id,
                    ),
                )
            return self._one_workspace("id = ?", workspace_id, conn)

    async def archive_workspace(self, workspace_id: str, now: float) -> WorkspaceRecord | None:
        return await self.db.run(self._archive_workspace, workspace_id, now)

    def _archive_workspace(self, workspace_id: str, now: float) -> WorkspaceRecord | None:
        with self.db.transaction(durable=True) as conn:
            conn.execute(
                "UPDATE workspaces SET archived_at = ? WHERE id = ? AND archived_at IS NULL",
                (now, workspace_id),
            )
            conn.execute(
                "UPDATE api_keys SET status = 'archived' WHERE workspace_id = ?", (workspace_id,)
            )
            return self._one_workspace("id = ?", workspace_id, conn)

    # --- API keys ---------------------------------------------------------------

    async def create_key(self, key: ApiKeyRecord, digest: str) -> ApiKeyRecord:
        return await self.db.run(self._create_key, key, digest)

    def _create_key(self, k: ApiKeyRecord, digest: str) -> ApiKeyRecord:
        with self.db.transaction(durable=True) as conn:
            conn.execute(
                f"INSERT INTO api_keys ({_KEY_COLUMNS}, digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    k.id,
                    k.kind,
                    k.workspace_id,
                    k.name,
                    k.hint,
                    k.status,
                    k.created_at,
                    k.expires_at,
                    digest,
                ),
            )
        return k

    async def key_by_digest(
        self, digest: str
    ) -> tuple[ApiKeyRecord, WorkspaceRecord | None] | None:
        return await self.db.run(self._key_by_digest, digest)

    def _key_by_digest(self, digest: str) -> tuple[ApiKeyRecord, WorkspaceRecord | None] | None:
        key_columns = ", ".join(f"k.{c.strip()}" for c in _KEY_COLUMNS.split(","))
        space_columns = ", ".join(f"w.{c.strip()}" for c in _WORKSPACE_COLUMNS.split(","))
        row = (
            self.db.reader()
            .execute(
                f"SELECT {key_columns}, {space_columns} FROM api_keys k"
                " LEFT JOIN workspaces w ON w.id = k.workspace_id WHERE k.digest = ?",
                (digest,),
            )
            .fetchone()
        )
        if row is None:
            return None
        n = len(_KEY_COLUMNS.split(","))
        key, space = row[:n], row[n:]
        return _key(key), (_workspace(space) if space[0] is not None else None)

    async def get_key(self, key_id: str) -> ApiKeyRecord | None:
        return await self.db.run(self._one_key, "id = ?", key_id)

    def _one_key(
        self, where: str, value: str, conn: sqlite3.Connection | None = None
    ) -> ApiKeyRecord | None:
        row = (
            (conn or self.db.reader())
            .execute(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE {where}", (value,))
            .fetchone()
        )
        return _key(row) if row else None

    async def list_keys(
        self,
        limit: int,
        after_id: str | None,
        before_id: str | None,
        workspace_id: str | None,
        status: str | None,
    ) -> tuple[list[ApiKeyRecord], bool]:
        where, params = ["1 = 1"], []
        if workspace_id is not None:
            where.append("workspace_id = ?")
            params.append(workspace_id)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        rows, has_more = await self.db.run(
            self._page,
            "api_keys",
            _KEY_COLUMNS,
            " AND ".join(where),
            params,
            limit,
            after_id,
            before_id,
        )
        return [_key(r) for r in rows], has_more

    async def update_key(
        self, key_id: str, name: str | None, status: str | None
    ) -> ApiKeyRecord | None:
        return await self.db.run(self._update_key, key_id, name, status)

    def _update_key(self, key_id: str, name: str | None, status: str | None) -> ApiKeyRecord | None:
        with self.db.transaction(durable=True) as conn:
            if name is not None:
                conn.execute("UPDATE api_keys SET name = ? WHERE id = ?", (name, key_id))
            if status is not None:
                conn.execute("UPDATE api_keys SET status = ? WHERE id = ?", (status, key_id))
            return self._one_key("id = ?", key_id, conn)

    async def count_keys(self) -> int:
        return await self.db.run(self._count_keys)

    def _count_keys(self) -> int:
        (n,) = self.db.reader().execute("SELECT count(*) FROM api_keys").fetchone()
        return int(n)

    # --- usage ------------------------------------------------------------------

    async def add_usage(self, rows: Sequence[UsageRow]) -> None:
        await self.db.run(self._add_usage, rows)

    def _add_usage(self, rows: Sequence[UsageRow]) -> None:
        with self.db.transaction() as conn:
            add_usage(conn, rows)

    async def usage(self, start: int, end: int) -> list[UsageRow]:
        return await self.db.run(self._usage, start, end)

    def _usage(self, start: int, end: int) -> list[UsageRow]:
        rows = (
            self.db.reader()
            .execute(
                "SELECT bucket, workspace_id, api_key_id, model, service_tier, requests,"
                " input_tokens, output_tokens FROM usage WHERE bucket >= ? AND bucket < ?"
                " ORDER BY bucket",
                (start, end),
            )
            .fetchall()
        )
        return [UsageRow(*r) for r in rows]
