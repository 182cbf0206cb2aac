"""The workers' own reports (who is running, how loaded), written once for both SQL
stores. Each worker upserts its row every few seconds and marks it stopped when it
shuts down; rows not heard from for a day are dropped."""

from __future__ import annotations

from typing import cast

import msgspec

from batchyard.store.records import FORGET_WORKERS_AFTER_SECONDS, EngineLoad, WorkerStatus
from batchyard.store.sql_runner import SqlRunner

_COLUMNS = "id, host, pid, started_at, seen_at, stopped_at, in_flight, processed, engines"


_engines = msgspec.json.Decoder(list[EngineLoad])


class SqlWorkers:
    def __init__(self, db: SqlRunner) -> None:
        self.db = db

    async def report(self, w: WorkerStatus) -> None:
        """Write the worker's row (and drop the rows of workers long gone)."""
        await self.db.write(
            (
                f"INSERT INTO workers ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at,"
                " stopped_at = excluded.stopped_at, in_flight = excluded.in_flight,"
                " processed = excluded.processed, engines = excluded.engines",
                (
                    w.id,
                    w.host,
                    w.pid,
                    w.started_at,
                    w.seen_at,
                    w.stopped_at,
                    w.in_flight,
                    w.processed,
                    msgspec.json.encode(w.engines).decode(),
                ),
            ),
            ("DELETE FROM workers WHERE seen_at < ?", (w.seen_at - FORGET_WORKERS_AFTER_SECONDS,)),
            durable=False,  # a lost report is replaced by the next one
        )

    async def list(self) -> list[WorkerStatus]:
        """Every worker heard from in the last day, the running ones first."""
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM workers"
            " ORDER BY CASE WHEN stopped_at IS NULL THEN 0 ELSE 1 END, started_at, id"
        )
        return [
            WorkerStatus(
                *(cast(tuple[str, str, int, float, float, float | None, int, int], r[:8])),
                engines=_engines.decode(cast(str, r[8])),
            )
            for r in rows
        ]
