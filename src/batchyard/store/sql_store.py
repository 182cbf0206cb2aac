"""The base of both SQL stores: the port's operations, each run once through
`lifecycle.py` (or a sub-store's shared SQL); SQLiteStore and PostgresStore supply
connections and transactions (`fetchone`, `fetchall`, `transact`) and their results pages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any, TypeVar

from typing_extensions import Buffer

from batchyard.store import lifecycle
from batchyard.store import queries as q
from batchyard.store.claims import Grouping
from batchyard.store.files_sql import SqlFiles
from batchyard.store.lifecycle import Tx
from batchyard.store.openai_batches_sql import SqlOpenAIBatches
from batchyard.store.records import (
    BatchRecord,
    ClaimedRequest,
    HousekeepingReport,
    NewBatch,
    OpenAIBatchRecord,
    Outcome,
    RecordReport,
)
from batchyard.store.responses_sql import SqlResponses
from batchyard.store.sql_runner import Row, Statement, batch_record, page
from batchyard.store.tenancy_sql import SqlTenancy
from batchyard.store.views_sql import SqlBatchViews
from batchyard.store.webhooks_sql import SqlWebhooks
from batchyard.store.workers_sql import SqlWorkers

T = TypeVar("T")
TxBody = Callable[[Tx], Coroutine[Any, Any, T]]


class SqlStore:
    def __init__(self) -> None:
        self.tenancy = SqlTenancy(self)
        self.files = SqlFiles(self)
        self.openai_batches = SqlOpenAIBatches(self)
        self.views = SqlBatchViews(self)
        self.workers = SqlWorkers(self)
        self.webhooks = SqlWebhooks(self)
        self.responses = SqlResponses(self)
        self._turn = 0

    # --- what each database supplies ---------------------------------------------

    async def fetchone(self, sql: str, *params: object) -> Row | None:
        raise NotImplementedError

    async def fetchall(self, sql: str, *params: object) -> list[Row]:
        raise NotImplementedError

    async def transact(self, body: TxBody[T], *, durable: bool = False) -> T:
        """Run `body` in one write transaction. `durable` ones (what the API accepts:
        create, cancel, delete) are on disk before this returns; the worker's follow
        the configured `synchronous` (an outcome lost to a crash only means its
        request runs again)."""
        raise NotImplementedError

    def result_lines(self, batch: BatchRecord, page_size: int = 2000) -> AsyncIterator[bytes]:
        raise NotImplementedError

    # --- the SqlRunner port of the sub-stores ------------------------------------

    async def write(self, *statements: Statement, durable: bool = True) -> list[Row | None]:
        async def run(tx: Tx) -> list[Row | None]:
            return [await tx.fetchone(sql, *params) for sql, params in statements]

        return await self.transact(run, durable=durable)

    # --- batches ------------------------------------------------------------------

    async def open_counts(self) -> tuple[int, int]:
        row = await self.fetchone(q.OPEN_COUNTS)
        assert row is not None
        return int(row[0]), int(row[1])  # type: ignore[call-overload]

    async def create_batch(
        self,
        batch: NewBatch,
        custom_ids: Sequence[str],
        params: Sequence[Buffer],
        queued_limit: int | None = None,
        openai: OpenAIBatchRecord | None = None,
    ) -> BatchRecord:
        return await self.transact(
            lambda tx: lifecycle.create_batch(tx, batch, custom_ids, params, queued_limit, openai),
            durable=True,
        )

    async def get_batch(self, workspace_id: str, batch_id: str) -> BatchRecord | None:
        row = await self.fetchone(q.GET_BATCH, batch_id, workspace_id)
        return batch_record(row) if row is not None else None

    async def list_batches(
        self, workspace_id: str, limit: int, after_id: str | None, before_id: str | None
    ) -> tuple[list[BatchRecord], bool]:
        """The Anthropic dialect's batches, newest first (OpenAI ones are listed by theirs)."""
        rows, has_more = await page(
            self,
            "batches",
            q.BATCH_COLUMNS,
            "workspace_id = ? AND dialect = 'anthropic'",
            (workspace_id,),
            limit,
            after_id,
            before_id,
        )
        return [batch_record(r) for r in rows], has_more

    async def cancel_batch(
        self, workspace_id: str, batch_id: str, now: float
    ) -> BatchRecord | None:
        return await self.transact(
            lambda tx: lifecycle.cancel_batch(tx, workspace_id, batch_id, now), durable=True
        )

    async def delete_batch(
        self, workspace_id: str, batch_id: str
    ) -> tuple[BatchRecord | None, bool]:
        return await self.transact(
            lambda tx: lifecycle.delete_batch(tx, workspace_id, batch_id), durable=True
        )

    # --- scheduling ---------------------------------------------------------------

    async def claim_requests(
        self,
        worker_id: str,
        now: float,
        lease_seconds: float,
        limit: int,
        grouping: Grouping | None = None,
    ) -> list[ClaimedRequest]:
        turn = self._turn
        self._turn += 1
        tried: list[Grouping] = []

        async def claim(tx: Tx) -> list[ClaimedRequest]:
            # Each try of the transaction starts from the rotation as it was; only the
            # one that commits moves it.
            trial = grouping.copy() if grouping is not None else None
            tried[:] = [trial] if trial is not None else []
            return await lifecycle.claim_requests(
                tx, worker_id, now, lease_seconds, limit, turn, trial
            )

        claimed = await self.transact(claim)
        if grouping is not None and tried:
            grouping.adopt(tried[0])
        return claimed

    async def record_outcomes(
        self, worker_id: str, outcomes: Sequence[Outcome], now: float
    ) -> RecordReport:
        return await self.transact(
            lambda tx: lifecycle.record_outcomes(tx, worker_id, outcomes, now)
        )

    async def extend_leases(self, worker_id: str, keys: Sequence[int], lease_until: float) -> None:
        await self.transact(lambda tx: lifecycle.extend_leases(tx, worker_id, keys, lease_until))

    async def housekeeping(self, now: float) -> HousekeepingReport:
        return await self.transact(lambda tx: lifecycle.housekeeping(tx, now))
