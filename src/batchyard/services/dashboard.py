"""The dashboard's reads, each scoped to the viewer's workspace exactly as the API's
are: the batches of both dialects, one batch (by its id or its OpenAI `batch_…` id),
its results, throughput timeline and ETA, the workers' reports, the last hours' usage."""

from __future__ import annotations

import math
from collections import OrderedDict

from batchyard.clock import Clock
from batchyard.errors import NotFound
from batchyard.services.eta import Eta
from batchyard.services.throughput import Throughput
from batchyard.store.layout import RESULT_KINDS as _STORED_KINDS
from batchyard.store.port import Store
from batchyard.store.records import (
    BatchRecord,
    BatchRow,
    ResultRow,
    UsageRow,
    WorkerStatus,
    WorkspaceRecord,
)

RESULT_KINDS = tuple(_STORED_KINDS)
"""The result types a batch's results can be filtered by."""

CHART_BUCKETS = 60
"""The bars of a batch's throughput chart."""

TimelineCounts = tuple[float, float, list[tuple[int, int]]]
"""(start, bucket width in seconds, (succeeded, errored) finished in each bucket)."""


def timeline_window(b: BatchRecord, now: float) -> tuple[float, float]:
    """(start, bucket width in whole seconds) so that the batch's life so far
    fits CHART_BUCKETS bars."""
    elapsed = (b.ended_at or now) - b.created_at
    return b.created_at, float(max(1, math.ceil(elapsed / CHART_BUCKETS)))


class TimelineCache:
    """A batch's timeline is one pass over its requests (~60 ms at 100k on SQLite):
    an ended batch's is kept (it won't change), a running one's for a few seconds,
    so the live summary every 2 s in many tabs does not rescan the batch each time.
    Per process; batch ids are unique store-wide (lookups come after the workspace check)."""

    def __init__(self, fresh_seconds: float = 5.0, entries: int = 256) -> None:
        self.fresh_seconds = fresh_seconds
        self.entries = entries
        self._kept: OrderedDict[str, tuple[float, bool, float, float, list[tuple[int, int]]]]
        self._kept = OrderedDict()

    async def get(self, store: Store, batch: BatchRecord, now: float) -> TimelineCounts:
        kept = self._kept.get(batch.id)
        if kept is not None:
            made_at, ended, start, width, counts = kept
            if ended or (batch.ended_at is None and now - made_at < self.fresh_seconds):
                self._kept.move_to_end(batch.id)
                return start, width, counts
        start, width = timeline_window(batch, now)
        counts = await store.views.timeline(batch, start, width, CHART_BUCKETS)
        self._kept[batch.id] = (now, batch.ended_at is not None, start, width, counts)
        self._kept.move_to_end(batch.id)
        while len(self._kept) > self.entries:
            self._kept.popitem(last=False)
        return start, width, counts


class DashboardService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        timelines: TimelineCache | None = None,
        eta: Throughput | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.timelines = timelines or TimelineCache()
        self.throughput = eta or Throughput(store, clock)
        """The same ETAs as the API's batch objects carry (pass the BatchService's)."""

    def now(self) -> float:
        return self.clock.now()

    async def batches(
        self, workspace_id: str, limit: int, before_seq: int | None, status: str | None
    ) -> tuple[list[BatchRow], bool]:
        """Newest first, `running` or `ended` ones only if asked; (page, more?)."""
        return await self.store.views.batches(workspace_id, limit, before_seq, status)

    async def batch(self, workspace: WorkspaceRecord, batch_id: str) -> BatchRow:
        row = await self.store.views.batch(workspace.id, batch_id)
        if row is None:
            raise NotFound(f"No batch {batch_id!r} in workspace {workspace.name!r}")
        return row

    async def find(self, workspace: WorkspaceRecord, wanted: str) -> str:
        """The id of the batch to open: `wanted` itself, or the batch an OpenAI Batch
        API `batch_…` id runs as."""
        if wanted.startswith("batch_"):
            found = await self.store.openai_batches.get(workspace.id, wanted)
            if found is None:
                raise NotFound(f"No batch {wanted!r} in workspace {workspace.name!r}")
            record, _ = found
            if record.batch_id is None:
                raise NotFound(f"{wanted} failed validation: it has no requests to show")
            wanted = record.batch_id
        await self.batch(workspace, wanted)
        return wanted

    async def eta(self, batch: BatchRecord) -> Eta | None:
        """The running batch's ETA (`services.eta`); None once it has ended."""
        return await self.throughput.of(batch)

    async def etas(self, batches: list[BatchRecord]) -> dict[str, Eta | None]:
        return await self.throughput.of_many(batches)

    async def timeline(self, batch: BatchRecord, now: float) -> TimelineCounts:
        return await self.timelines.get(self.store, batch, now)

    async def results(
        self, batch: BatchRecord, *, search: str, kind: str | None, offset: int, limit: int
    ) -> tuple[list[ResultRow], int]:
        """Finished requests matching `search` and `kind`, errored ones first; (page, how
        many match in all)."""
        return await self.store.views.results(
            batch, search=search, kind=kind, offset=offset, limit=limit
        )

    async def result(self, batch: BatchRecord, custom_id: str) -> ResultRow:
        found = await self.store.views.result(batch, custom_id)
        if found is None:
            raise NotFound(f"Request {custom_id!r} of {batch.id} has no result (yet)")
        return found

    async def workers(self) -> list[WorkerStatus]:
        """Every worker's report (for admin keys: hosts and the whole fleet's load)."""
        return await self.store.workers.list()

    async def usage(self, hours: int) -> list[UsageRow]:
        """The usage counters of the last `hours` hours, this one included (every workspace)."""
        now = int(self.clock.now())
        end = now - now % 3600 + 3600
        return await self.store.tenancy.usage(end - hours * 3600, end)

    async def open_counts(self) -> tuple[int, int]:
        """(batches not ended, their unfinished requests), store-wide."""
        return await self.store.open_counts()
