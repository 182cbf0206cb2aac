"""What both SQL stores share, written once on their SqlRunner methods: the tenancy,
files, OpenAI-batch, dashboard and worker-report queries, the batch list, and the store-wide counts."""

from __future__ import annotations

from batchyard.store.files_sql import SqlFiles
from batchyard.store.openai_batches_sql import SqlOpenAIBatches
from batchyard.store.records import BatchRecord
from batchyard.store.sql import BATCH_COLUMNS, Row, Statement, batch_record, open_counts, page
from batchyard.store.tenancy_sql import SqlTenancy
from batchyard.store.views_sql import SqlBatchViews
from batchyard.store.webhooks_sql import SqlWebhooks
from batchyard.store.workers_sql import SqlWorkers


class SharedSql:
    """A base of SQLiteStore and PostgresStore; they supply the three SqlRunner methods."""

    def __init__(self) -> None:
        self.tenancy = SqlTenancy(self)
        self.files = SqlFiles(self)
        self.openai_batches = SqlOpenAIBatches(self)
        self.views = SqlBatchViews(self)
        self.workers = SqlWorkers(self)
        self.webhooks = SqlWebhooks(self)

    async def fetchone(self, sql: str, *params: object) -> Row | None:
        raise NotImplementedError

    async def fetchall(self, sql: str, *params: object) -> list[Row]:
        raise NotImplementedError

    async def write(self, *statements: Statement, durable: bool = True) -> list[Row | None]:
        raise NotImplementedError

    async def open_counts(self) -> tuple[int, int]:
        return await open_counts(self)

    async def list_batches(
        self, workspace_id: str, limit: int, after_id: str | None, before_id: str | None
    ) -> tuple[list[BatchRecord], bool]:
        """The Anthropic dialect's batches, newest first (OpenAI ones are listed by theirs)."""
        rows, has_more = await page(
            self,
            "batches",
            BATCH_COLUMNS,
            "workspace_id = ? AND dialect = 'anthropic'",
            (workspace_id,),
            limit,
            after_id,
            before_id,
        )
        return [batch_record(r) for r in rows], has_more
