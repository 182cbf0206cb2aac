"""Cursor pagination (`after_id` / `before_id`, newest first) over a table with `seq` and `id`."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from batchyard.store.base import UnknownCursor

Row = tuple[object, ...]


def page(
    conn: sqlite3.Connection,
    table: str,
    columns: str,
    where: str,
    params: Sequence[object],
    limit: int,
    after_id: str | None,
    before_id: str | None,
) -> tuple[list[Row], bool]:
    """One page of `table` rows matching `where`, newest first; returns (rows, has_more).

    A cursor must name a row that matches `where` too (another tenant's id is
    unknown here), else UnknownCursor. Runs in one read transaction.
    """
    conn.execute("BEGIN")
    try:
        if before_id is not None:
            pivot = _seq(conn, table, where, params, before_id)
            rows = conn.execute(
                f"SELECT {columns} FROM {table} WHERE {where} AND seq > ? ORDER BY seq ASC LIMIT ?",
                (*params, pivot, limit + 1),
            ).fetchall()
            return list(reversed(rows[:limit])), len(rows) > limit
        pivot = _seq(conn, table, where, params, after_id) if after_id is not None else 1 << 62
        rows = conn.execute(
            f"SELECT {columns} FROM {table} WHERE {where} AND seq < ? ORDER BY seq DESC LIMIT ?",
            (*params, pivot, limit + 1),
        ).fetchall()
        return rows[:limit], len(rows) > limit
    finally:
        conn.execute("COMMIT")


def _seq(
    conn: sqlite3.Connection, table: str, where: str, params: Sequence[object], row_id: str
) -> int:
    row = conn.execute(
        f"SELECT seq FROM {table} WHERE {where} AND id = ?", (*params, row_id)
    ).fetchone()
    if row is None:
        raise UnknownCursor(row_id)
    return int(row[0])
