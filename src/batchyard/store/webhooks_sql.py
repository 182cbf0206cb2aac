"""The webhooks' delivery state (columns of `batches`), written once for both SQL stores."""

from __future__ import annotations

from batchyard.store.queries import BATCH_COLUMNS
from batchyard.store.records import WebhookDue
from batchyard.store.sql_runner import SqlRunner, batch_record


class SqlWebhooks:
    def __init__(self, db: SqlRunner) -> None:
        self.db = db

    async def take_due(self, now: float, lease_seconds: float, limit: int = 20) -> list[WebhookDue]:
        rows = await self.db.fetchall(
            f"SELECT {BATCH_COLUMNS}, webhook_url, webhook_attempts FROM batches"
            " WHERE webhook_url IS NOT NULL AND webhook_done_at IS NULL"
            " AND processing_status = 'ended' AND coalesce(webhook_next_at, 0) <= ?"
            " ORDER BY seq LIMIT ?",
            now,
            limit,
        )
        taken = []
        for row in rows:
            record = batch_record(row[:-2])
            # Take it for a while (another worker skips it), or lose to who took it first.
            [won] = await self.db.write(
                (
                    "UPDATE batches SET webhook_next_at = ? WHERE seq = ?"
                    " AND coalesce(webhook_next_at, 0) <= ? AND webhook_done_at IS NULL"
                    " RETURNING seq",
                    (now + lease_seconds, record.seq, now),
                ),
                durable=False,
            )
            if won is not None:
                taken.append(WebhookDue(record, str(row[-2]), int(row[-1])))  # type: ignore[call-overload]
        return taken

    async def record_attempt(
        self, batch_seq: int, attempts: int, *, done_at: float | None, next_at: float | None
    ) -> None:
        if done_at is not None:
            sql = "UPDATE batches SET webhook_attempts = ?, webhook_done_at = ? WHERE seq = ?"
            params: tuple[object, ...] = (attempts, done_at, batch_seq)
        else:
            sql = "UPDATE batches SET webhook_attempts = ?, webhook_next_at = ? WHERE seq = ?"
            params = (attempts, next_at, batch_seq)
        await self.db.write((sql, params), durable=False)
