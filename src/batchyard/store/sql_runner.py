"""What the SQL code shares: a small runner port, cursor pages, records from rows.

Shared SQL uses `?` placeholders; the PostgreSQL runner numbers them (`$1`, `$2`…).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from batchyard.store.records import BatchRecord, UnknownCursor, UsageRow

Row = tuple[object, ...]
Statement = tuple[str, Sequence[object]]


def batch_record(row: Row) -> BatchRecord:
    return BatchRecord(*row)  # type: ignore[arg-type]


class SqlRunner(Protocol):
    async def fetchone(self, sql: str, *params: object) -> Row | None: ...

    async def fetchall(self, sql: str, *params: object) -> list[Row]: ...

    async def write(self, *statements: Statement, durable: bool = True) -> list[Row | None]:
        """Run the statements in one write transaction (fsynced before it returns when
        `durable`); return each one's first row (from RETURNING), or None."""


async def page(
    db: SqlRunner,
    table: str,
    columns: str,
    where: str,
    params: Sequence[object],
    limit: int,
    after_id: str | None,
    before_id: str | None,
    *,
    ascending: bool = False,
) -> tuple[list[Row], bool]:
    """One page of `table` rows matching `where`, newest first (by `seq`; oldest first
    when `ascending`); returns (rows, has_more). A cursor must name a row that
    matches `where` too (another tenant's id is unknown here), else UnknownCursor."""
    cursor = before_id if before_id is not None else after_id
    pivot = 1 << 62
    if cursor is not None:
        found = await db.fetchone(
            f"SELECT seq FROM {table} WHERE {where} AND id = ?", *params, cursor
        )
        if found is None:
            raise UnknownCursor(cursor)
        pivot = int(found[0])  # type: ignore[call-overload]
    if ascending:
        rows = await db.fetchall(
            f"SELECT {columns} FROM {table} WHERE {where} AND seq > ? ORDER BY seq ASC LIMIT ?",
            *params,
            pivot if cursor is not None else -1,
            limit + 1,
        )
        return rows[:limit], len(rows) > limit
    if before_id is not None:
        rows = await db.fetchall(
            f"SELECT {columns} FROM {table} WHERE {where} AND seq > ? ORDER BY seq ASC LIMIT ?",
            *params,
            pivot,
            limit + 1,
        )
        return list(reversed(rows[:limit])), len(rows) > limit
    rows = await db.fetchall(
        f"SELECT {columns} FROM {table} WHERE {where} AND seq < ? ORDER BY seq DESC LIMIT ?",
        *params,
        pivot,
        limit + 1,
    )
    return rows[:limit], len(rows) > limit


def usage_params(row: UsageRow) -> tuple[object, ...]:
    return (
        row.bucket,
        row.workspace_id,
        row.api_key_id,
        row.model,
        row.service_tier,
        row.requests,
        row.input_tokens,
        row.output_tokens,
        row.cache_read_input_tokens,
        row.cache_creation_5m_input_tokens,
        row.cache_creation_1h_input_tokens,
    )
