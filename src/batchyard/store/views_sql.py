"""Read-only views of batches for the dashboard and the metrics, written once for both
SQL stores: a workspace's batches of both dialects, a batch's results a page at a
time (search by `custom_id`, errors first), one result, a batch's requests finished
per interval, batch records by id, and the open batches."""

from __future__ import annotations

from typing import cast

from batchyard.store.layout import KIND_OF, RESULT_KINDS, RequestState, key_range
from batchyard.store.queries import BATCH_COLUMNS
from batchyard.store.records import BatchRecord, BatchRow, ResultRow, made_line
from batchyard.store.sql_runner import Row, SqlRunner, batch_record

_SELECT_ROWS = (
    f"SELECT {', '.join('b.' + c.strip() for c in BATCH_COLUMNS.split(','))}, b.dialect, o.id"
    " FROM batches b LEFT JOIN openai_batches o ON o.batch_id = b.id"
)


def _batch_row(row: Row) -> BatchRow:
    return BatchRow(batch_record(row[:-2]), str(row[-2]), row[-1])  # type: ignore[arg-type]


def _like(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its wildcards taken literally."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _result(row: Row) -> ResultRow:
    custom_id, state, stored = row
    kind = KIND_OF[RequestState(cast(int, state))]
    # Canceled and expired requests have no stored line.
    line = made_line(str(custom_id), kind) if stored is None else bytes(cast(bytes, stored))
    return ResultRow(str(custom_id), kind, line)


class SqlBatchViews:
    def __init__(self, db: SqlRunner) -> None:
        self.db = db

    async def batches(
        self,
        workspace_id: str,
        limit: int,
        before_seq: int | None = None,
        status: str | None = None,
    ) -> tuple[list[BatchRow], bool]:
        """The workspace's batches of both dialects, newest first, `running` or
        `ended` ones only if asked; (page, more?)."""
        only = {
            None: "",
            "running": " AND b.processing_status != 'ended'",
            "ended": " AND b.processing_status = 'ended'",
        }[status]
        rows = await self.db.fetchall(
            f"{_SELECT_ROWS} WHERE b.workspace_id = ? AND b.seq < ?{only}"
            " ORDER BY b.seq DESC LIMIT ?",
            workspace_id,
            before_seq if before_seq is not None else 2**62,
            limit + 1,
        )
        return [_batch_row(r) for r in rows[:limit]], len(rows) > limit

    async def batch(self, workspace_id: str, batch_id: str) -> BatchRow | None:
        row = await self.db.fetchone(
            f"{_SELECT_ROWS} WHERE b.workspace_id = ? AND b.id = ?", workspace_id, batch_id
        )
        return _batch_row(row) if row else None

    def _where(self, batch: BatchRecord, search: str, kind: str | None) -> tuple[str, list[object]]:
        lo, hi = key_range(batch.seq)
        where = "key BETWEEN ? AND ? AND state >= ?"
        params: list[object] = [lo, hi, int(RequestState.SUCCEEDED)]
        if kind is not None:
            where += " AND state = ?"
            params.append(int(RESULT_KINDS[kind]))
        if search:
            where += " AND lower(custom_id) LIKE ? ESCAPE '\\'"
            params.append(_like(search))
        return where, params

    async def results(
        self,
        batch: BatchRecord,
        *,
        search: str = "",
        kind: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[ResultRow], int]:
        """Finished requests whose custom_id holds `search` (any case), errored ones
        first (unless `kind` picks one type), then in submission order; (page, how
        many match in all). Without a search each part is read in key order, with no
        sort: a first page costs what it shows, deeper ones skip rows."""
        where, params = self._where(batch, search, kind)
        counts = await self._counts(batch, search, where, params)
        if kind is not None:
            return await self._rows(where, params, limit, offset), counts.get(kind, 0)
        if search:  # matches are few: sort them, in one pass over the batch
            order = f"CASE WHEN state = {int(RequestState.ERRORED)} THEN 0 ELSE 1 END, key"
            return await self._rows(where, params, limit, offset, order), sum(counts.values())
        errored = counts.get("errored", 0)
        rows = []
        if offset < errored:
            only = f"{where} AND state = {int(RequestState.ERRORED)}"
            rows = await self._rows(only, params, limit, offset)
        if len(rows) < limit:
            rest = f"{where} AND state != {int(RequestState.ERRORED)}"
            rows += await self._rows(rest, params, limit - len(rows), max(0, offset - errored))
        return rows, sum(counts.values())

    async def _rows(
        self, where: str, params: list[object], limit: int, offset: int, order: str = "key"
    ) -> list[ResultRow]:
        rows = await self.db.fetchall(
            f"SELECT custom_id, state, result FROM requests WHERE {where}"
            f" ORDER BY {order} LIMIT ? OFFSET ?",
            *params,
            limit,
            offset,
        )
        return [_result(r) for r in rows]

    async def _counts(
        self, batch: BatchRecord, search: str, where: str, params: list[object]
    ) -> dict[str, int]:
        """How many rows match, by result type. An ended batch's counts are final:
        with no search they are its record's (unless its results were deleted)."""
        if batch.processing_status == "ended" and batch.archived_at is None and not search:
            return {k: int(getattr(batch, k)) for k in RESULT_KINDS}
        rows = await self.db.fetchall(
            f"SELECT state, count(*) FROM requests WHERE {where} GROUP BY state", *params
        )
        return {KIND_OF[RequestState(cast(int, state))]: cast(int, n) for state, n in rows}

    async def result(self, batch: BatchRecord, custom_id: str) -> ResultRow | None:
        """The finished request `custom_id` of the batch, if it has finished."""
        lo, hi = key_range(batch.seq)
        row = await self.db.fetchone(
            "SELECT custom_id, state, result FROM requests"
            " WHERE key BETWEEN ? AND ? AND custom_id = ? AND state >= ?",
            lo,
            hi,
            custom_id,
            int(RequestState.SUCCEEDED),
        )
        return _result(row) if row else None

    async def records(self, batch_ids: list[str], chunk: int = 500) -> list[BatchRecord]:
        """The batches with these ids, whatever their workspace (for metrics)."""
        found: list[BatchRecord] = []
        for i in range(0, len(batch_ids), chunk):
            ids = batch_ids[i : i + chunk]
            rows = await self.db.fetchall(
                f"SELECT {BATCH_COLUMNS} FROM batches WHERE id IN ({','.join('?' * len(ids))})",
                *ids,
            )
            found += map(batch_record, rows)
        return found

    async def open_batches(self, limit: int = 10_000) -> list[BatchRecord]:
        """Every workspace's batches not yet ended, oldest first, at most `limit`
        (one range of the `batches_status` index)."""
        rows = await self.db.fetchall(
            f"SELECT {BATCH_COLUMNS} FROM batches"
            " WHERE processing_status IN ('in_progress', 'canceling') ORDER BY seq LIMIT ?",
            limit,
        )
        return [batch_record(r) for r in rows]

    async def timeline(
        self, batch: BatchRecord, start: float, width: float, buckets: int
    ) -> list[tuple[int, int]]:
        """(succeeded, errored) finished in each of `buckets` intervals of `width`
        seconds from `start`, in one pass over the batch (integer milliseconds, so
        the bucket arithmetic is the same integer division in both databases)."""
        lo, hi = key_range(batch.seq)
        start_ms, width_ms = int(start * 1000), max(1, int(width * 1000))
        rows = await self.db.fetchall(
            "SELECT (CAST(finished_at * 1000 AS BIGINT) - ?) / ? AS bucket, state, count(*)"
            " FROM requests WHERE key BETWEEN ? AND ? AND state IN (?, ?) AND finished_at >= ?"
            " GROUP BY bucket, state",
            start_ms,
            width_ms,
            lo,
            hi,
            int(RequestState.SUCCEEDED),
            int(RequestState.ERRORED),
            start,
        )
        counts = [[0, 0] for _ in range(buckets)]
        for bucket, state, n in rows:
            i = cast(int, bucket)
            if 0 <= i < buckets:
                counts[i][state != RequestState.SUCCEEDED] += cast(int, n)
        return [(ok, bad) for ok, bad in counts]
