"""Workers' reports of themselves, on SQLite, PostgreSQL and in memory."""

from __future__ import annotations

import pytest

from batchyard.store.port import Store
from batchyard.store.records import FORGET_WORKERS_AFTER_SECONDS, EngineLoad, WorkerStatus

pytestmark = pytest.mark.anyio
T0 = 1_750_000_000.0


def status(worker_id: str, seen_at: float, **kw: object) -> WorkerStatus:
    fields: dict[str, object] = {
        "id": worker_id,
        "host": "box",
        "pid": 42,
        "started_at": T0,
        "seen_at": seen_at,
        "stopped_at": None,
        "in_flight": 3,
        "processed": 10,
        "engines": [EngineLoad("fake", 4, 3, 1)],
    }
    fields.update(kw)
    return WorkerStatus(**fields)  # type: ignore[arg-type]


async def test_reports_are_upserted_and_listed_running_first(store: Store) -> None:
    await store.workers.report(status("wrk_a", T0 + 1))
    await store.workers.report(status("wrk_b", T0 + 1, started_at=T0 - 5, host="other"))
    update = status("wrk_a", T0 + 6, in_flight=0, processed=99, engines=[])
    await store.workers.report(update)
    stopped = status("wrk_b", T0 + 7, stopped_at=T0 + 7, started_at=T0 - 5, host="other")
    await store.workers.report(stopped)
    assert await store.workers.list() == [update, stopped]


async def test_workers_gone_for_a_day_are_forgotten(store: Store) -> None:
    await store.workers.report(status("wrk_old", T0))
    await store.workers.report(status("wrk_new", T0 + FORGET_WORKERS_AFTER_SECONDS - 1))
    assert sorted(w.id for w in await store.workers.list()) == ["wrk_new", "wrk_old"]
    await store.workers.report(status("wrk_new", T0 + FORGET_WORKERS_AFTER_SECONDS + 1))
    assert [w.id for w in await store.workers.list()] == ["wrk_new"]
