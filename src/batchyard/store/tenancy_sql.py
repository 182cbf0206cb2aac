"""Workspaces, API keys and usage counters, written once for both SQL stores."""

from __future__ import annotations

from collections.abc import Sequence

from batchyard.store.queries import USAGE_UPSERT
from batchyard.store.records import ApiKeyRecord, RateLimits, UsageRow, WorkspaceRecord
from batchyard.store.sql_runner import Row, SqlRunner, page, usage_params

_WORKSPACE_COLUMNS = (
    "id, name, display_color, created_at, archived_at,"
    " requests_per_minute, batch_requests_per_minute, batch_queued_requests"
)
_KEY_COLUMNS = "id, kind, workspace_id, name, hint, status, created_at, expires_at"


def _qualified(alias: str, columns: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in columns.split(","))


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


class SqlTenancy:
    def __init__(self, db: SqlRunner) -> None:
        self.db = db

    # --- workspaces -------------------------------------------------------------

    async def create_workspace(self, w: WorkspaceRecord) -> WorkspaceRecord:
        await self.db.write(
            (
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
        )
        return w

    async def get_workspace(self, workspace_id: str) -> WorkspaceRecord | None:
        row = await self.db.fetchone(
            f"SELECT {_WORKSPACE_COLUMNS} FROM workspaces WHERE id = ?", workspace_id
        )
        return _workspace(row) if row else None

    async def workspace_by_name(self, name: str) -> WorkspaceRecord | None:
        row = await self.db.fetchone(
            f"SELECT {_WORKSPACE_COLUMNS} FROM workspaces"
            " WHERE name = ? AND archived_at IS NULL ORDER BY seq LIMIT 1",
            name,
        )
        return _workspace(row) if row else None

    async def list_workspaces(
        self, limit: int, after_id: str | None, before_id: str | None, include_archived: bool
    ) -> tuple[list[WorkspaceRecord], bool]:
        where = "1 = 1" if include_archived else "archived_at IS NULL"
        rows, has_more = await page(
            self.db, "workspaces", _WORKSPACE_COLUMNS, where, (), limit, after_id, before_id
        )
        return [_workspace(r) for r in rows], has_more

    async def update_workspace(
        self, workspace_id: str, name: str | None, limits: RateLimits | None
    ) -> WorkspaceRecord | None:
        statements: list[tuple[str, Sequence[object]]] = []
        if name is not None:
            statements.append(("UPDATE workspaces SET name = ? WHERE id = ?", (name, workspace_id)))
        if limits is not None:
            statements.append(
                (
                    "UPDATE workspaces SET requests_per_minute = ?, batch_requests_per_minute = ?,"
                    " batch_queued_requests = ? WHERE id = ?",
                    (
                        limits.requests_per_minute,
                        limits.batch_requests_per_minute,
                        limits.batch_queued_requests,
                        workspace_id,
                    ),
                )
            )
        if statements:
            await self.db.write(*statements)
        return await self.get_workspace(workspace_id)

    async def archive_workspace(self, workspace_id: str, now: float) -> WorkspaceRecord | None:
        await self.db.write(
            (
                "UPDATE workspaces SET archived_at = ? WHERE id = ? AND archived_at IS NULL",
                (now, workspace_id),
            ),
            ("UPDATE api_keys SET status = 'archived' WHERE workspace_id = ?", (workspace_id,)),
        )
        return await self.get_workspace(workspace_id)

    # --- API keys ---------------------------------------------------------------

    async def create_key(self, k: ApiKeyRecord, digest: str) -> ApiKeyRecord:
        await self.db.write(
            (
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
        )
        return k

    async def key_by_digest(
        self, digest: str
    ) -> tuple[ApiKeyRecord, WorkspaceRecord | None] | None:
        row = await self.db.fetchone(
            f"SELECT {_qualified('k', _KEY_COLUMNS)}, {_qualified('w', _WORKSPACE_COLUMNS)}"
            " FROM api_keys k LEFT JOIN workspaces w ON w.id = k.workspace_id"
            " WHERE k.digest = ?",
            digest,
        )
        if row is None:
            return None
        n = len(_KEY_COLUMNS.split(","))
        key, space = row[:n], row[n:]
        return _key(key), (_workspace(space) if space[0] is not None else None)

    async def get_key(self, key_id: str) -> ApiKeyRecord | None:
        row = await self.db.fetchone(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = ?", key_id)
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
        rows, has_more = await page(
            self.db,
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
        statements: list[tuple[str, Sequence[object]]] = []
        if name is not None:
            statements.append(("UPDATE api_keys SET name = ? WHERE id = ?", (name, key_id)))
        if status is not None:
            statements.append(("UPDATE api_keys SET status = ? WHERE id = ?", (status, key_id)))
        if statements:
            await self.db.write(*statements)
        return await self.get_key(key_id)

    async def count_keys(self) -> int:
        row = await self.db.fetchone("SELECT count(*) FROM api_keys")
        assert row is not None
        count: int = row[0]  # type: ignore[assignment]
        return count

    # --- usage ------------------------------------------------------------------

    async def add_usage(self, rows: Sequence[UsageRow]) -> None:
        if rows:
            # Not fsynced: a crash may lose the last counts, never a result.
            await self.db.write(*((USAGE_UPSERT, usage_params(r)) for r in rows), durable=False)

    async def usage(self, start: int, end: int) -> list[UsageRow]:
        rows = await self.db.fetchall(
            "SELECT bucket, workspace_id, api_key_id, model, service_tier, requests,"
            " input_tokens, output_tokens, cache_read_input_tokens,"
            " cache_creation_5m_input_tokens, cache_creation_1h_input_tokens"
            " FROM usage WHERE bucket >= ? AND bucket < ?"
            " ORDER BY bucket",
            start,
            end,
        )
        return [UsageRow(*r) for r in rows]  # type: ignore[arg-type]
