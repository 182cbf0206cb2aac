"""What both SQL stores share: a small runner port, cursor pages, and SQL written once.

Shared SQL uses `?` placeholders; the PostgreSQL runner numbers them (`$1`, `$2`…).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from batchyard.store.records import BatchRecord, UnknownCursor, UsageRow

Row = tuple[object, ...]
Statement = tuple[str, Sequence[object]]

BATCH_COLUMNS = (
    "seq, id, workspace_id, processing_status, created_at, expires_at, cancel_initiated_at, "
    "ended_at, archived_at, total, processing, succeeded, errored, canceled, expired"
)


def batch_record(row: Row) -> BatchRecord:
    return BatchRecord(*row)  # type: ignore[arg-type]


def result_line(cast: str = "{}") -> str:
    """SQL for a request's results line: the stored one, or one made from its
    `custom_id` for canceled (4) and expired (5) requests. `cast` wraps the made
    text where the database needs it as bytes (PostgreSQL: `({})::bytea`;
    custom_ids hold no backslashes, so the cast keeps them as they are)."""

    def made(kind: str) -> str:
        text = '\'{"custom_id":"\' || custom_id || \'","result":{"type":"' + kind + "\"}}'"
        return cast.format(text)

    return (
        f"CASE WHEN result IS NOT NULL THEN result WHEN state = 4 THEN {made('canceled')}"
        f" WHEN state = 5 THEN {made('expired')} END"
    )


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


USAGE_UPSERT = (
    "INSERT INTO usage (bucket, workspace_id, api_key_id, model, service_tier, requests,"
    " input_tokens, output_tokens, cache_read_input_tokens, cache_creation_5m_input_tokens,"
    " cache_creation_1h_input_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (bucket, workspace_id, api_key_id, model, service_tier) DO UPDATE SET"
    " requests = usage.requests + excluded.requests,"
    " input_tokens = usage.input_tokens + excluded.input_tokens,"
    " output_tokens = usage.output_tokens + excluded.output_tokens,"
    " cache_read_input_tokens = usage.cache_read_input_tokens + excluded.cache_read_input_tokens,"
    " cache_creation_5m_input_tokens = usage.cache_creation_5m_input_tokens"
    " + excluded.cache_creation_5m_input_tokens,"
    " cache_creation_1h_input_tokens = usage.cache_creation_1h_input_tokens"
    " + excluded.cache_creation_1h_input_tokens"
)


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


async def open_counts(db: SqlRunner) -> tuple[int, int]:
    """(batches not ended, their unfinished requests) in the whole store."""
    row = await db.fetchone(
        "SELECT count(*), coalesce(sum(processing), 0) FROM batches"
        " WHERE processing_status != 'ended'"
    )
    assert row is not None
    return int(row[0]), int(row[1])  # type: ignore[call-overload]
