"""The OpenAI Batch API's records, written once for both SQL stores."""

from __future__ import annotations

from batchyard.store.queries import BATCH_COLUMNS
from batchyard.store.records import BatchRecord, OpenAIBatchRecord
from batchyard.store.sql_runner import Row, SqlRunner, Statement, batch_record, page

_COLUMNS = (
    "id, workspace_id, batch_id, endpoint, input_file_id, completion_window, metadata, errors,"
    " created_at, failed_at, output_file_id, error_file_id, finalized_at"
)


def _record(row: Row) -> OpenAIBatchRecord:
    return OpenAIBatchRecord(*row)  # type: ignore[arg-type]


class SqlOpenAIBatches:
    def __init__(self, db: SqlRunner) -> None:
        self.db = db

    @staticmethod
    def insert(r: OpenAIBatchRecord) -> Statement:
        """The INSERT, to run alone or in the transaction that creates the batch."""
        return (
            f"INSERT INTO openai_batches ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                r.id,
                r.workspace_id,
                r.batch_id,
                r.endpoint,
                r.input_file_id,
                r.completion_window,
                r.metadata,
                r.errors,
                r.created_at,
                r.failed_at,
                r.output_file_id,
                r.error_file_id,
                r.finalized_at,
            ),
        )

    async def create(self, record: OpenAIBatchRecord) -> OpenAIBatchRecord:
        await self.db.write(self.insert(record))
        return record

    async def _with_batches(
        self, records: list[OpenAIBatchRecord]
    ) -> list[tuple[OpenAIBatchRecord, BatchRecord | None]]:
        ids = [r.batch_id for r in records if r.batch_id]
        batches: dict[str, BatchRecord] = {}
        if ids:
            rows = await self.db.fetchall(
                f"SELECT {BATCH_COLUMNS} FROM batches WHERE id IN ({','.join('?' * len(ids))})",
                *ids,
            )
            batches = {b.id: b for b in map(batch_record, rows)}
        return [(r, batches.get(r.batch_id or "")) for r in records]

    async def get(
        self, workspace_id: str, batch_id: str
    ) -> tuple[OpenAIBatchRecord, BatchRecord | None] | None:
        row = await self.db.fetchone(
            f"SELECT {_COLUMNS} FROM openai_batches WHERE id = ? AND workspace_id = ?",
            batch_id,
            workspace_id,
        )
        if row is None:
            return None
        [found] = await self._with_batches([_record(row)])
        return found

    async def page(
        self, workspace_id: str, limit: int, after: str | None
    ) -> tuple[list[tuple[OpenAIBatchRecord, BatchRecord | None]], bool]:
        rows, more = await page(
            self.db,
            "openai_batches",
            _COLUMNS,
            "workspace_id = ?",
            (workspace_id,),
            limit,
            after,
            None,
        )
        return await self._with_batches([_record(r) for r in rows]), more

    async def unfinalized(self, limit: int = 20) -> list[tuple[OpenAIBatchRecord, BatchRecord]]:
        """Batches whose requests have all ended but whose output files are not written yet."""
        rows = await self.db.fetchall(
            f"SELECT {', '.join('o.' + c.strip() for c in _COLUMNS.split(','))} FROM openai_batches o"
            " JOIN batches b ON b.id = o.batch_id"
            " WHERE o.finalized_at IS NULL AND o.batch_id IS NOT NULL"
            " AND b.processing_status = 'ended' ORDER BY o.seq LIMIT ?",
            limit,
        )
        return [(r, b) for r, b in await self._with_batches([_record(x) for x in rows]) if b]

    async def finalize(
        self, openai_id: str, output_file_id: str | None, error_file_id: str | None, now: float
    ) -> bool:
        """Record the output files, unless another worker did first (then False)."""
        [row] = await self.db.write(
            (
                "UPDATE openai_batches SET output_file_id = ?, error_file_id = ?, finalized_at = ?"
                " WHERE id = ? AND finalized_at IS NULL RETURNING id",
                (output_file_id, error_file_id, now, openai_id),
            )
        )
        return row is not None
