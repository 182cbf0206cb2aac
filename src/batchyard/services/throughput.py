"""Throughput as this process sees it, and the ETAs made from it (`services.eta`).

The ETA of a batch is asked on every poll of the retrieve endpoint, every list, every
dashboard refresh and metrics scrape. None of them reads requests: at most every
`sample_seconds` one read of the open batches' records (an index range of the
`batches` table, whatever their size) is added to the samples, and every ETA asked
meanwhile is worked out from those samples and the caller's fresh record. Per
process; every API replica samples the same store, so they agree to within a sample.

A batch that becomes at risk of not finishing before it expires is logged once (by
the process that first works it out)."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterable

from batchyard.clock import Clock, to_datetime
from batchyard.services.eta import Eta, Samples, estimate
from batchyard.store.port import Store
from batchyard.store.records import BatchRecord

log = logging.getLogger("batchyard.eta")

SAMPLE_SECONDS = 2.0
"""The most often the open batches are read (the ETAs' freshness)."""


class Throughput:
    def __init__(self, store: Store, clock: Clock, sample_seconds: float = SAMPLE_SECONDS) -> None:
        self.store = store
        self.clock = clock
        self.sample_seconds = sample_seconds
        self.samples = Samples()
        self._lock = asyncio.Lock()
        self._warned: OrderedDict[str, None] = OrderedDict()

    async def _refresh(self, now: float) -> None:
        taken = self.samples.taken_at
        if taken is not None and now - taken < self.sample_seconds:
            return
        async with self._lock:  # one read for every caller that comes meanwhile
            taken = self.samples.taken_at
            if taken is not None and now - taken < self.sample_seconds:
                return
            opened = await self.store.views.open_batches()
            still = {b.id for b in opened}
            gone = [i for i in self.samples.open if i not in still]
            ended = await self.store.views.records(gone) if gone else []
            self.samples.add(self.clock.now(), opened, ended)

    async def of(self, batch: BatchRecord) -> Eta | None:
        """The batch's ETA (its record as just read); None once it has ended."""
        if batch.processing_status == "ended":
            return None
        return (await self.of_many([batch]))[batch.id]

    async def of_many(self, batches: Iterable[BatchRecord]) -> dict[str, Eta | None]:
        """The ETAs of these batches (one sample for all of them)."""
        batches = list(batches)
        if all(b.processing_status == "ended" for b in batches):
            return {b.id: None for b in batches}
        await self._refresh(self.clock.now())
        # Read after the refresh: the sample it took is stamped after the store's read,
        # and a `now` from before would leave it out (the deployment's rate a sample late).
        return self._estimates(batches, self.clock.now())

    async def at_risk(self) -> list[tuple[BatchRecord, Eta]]:
        """The open batches not expected to finish before they expire (for the metrics)."""
        await self._refresh(self.clock.now())
        opened = list(self.samples.open.values())
        # The records are the sample's: as of when it was taken.
        etas = self._estimates(opened, self.samples.taken_at or self.clock.now())
        return [(b, e) for b in opened if (e := etas[b.id]) is not None and e.at_risk]

    def _estimates(self, batches: list[BatchRecord], now: float) -> dict[str, Eta | None]:
        """`batches` as of `now`."""
        found = {b.id: estimate(b, self.samples, now) for b in batches}
        for b in batches:
            eta = found[b.id]
            if eta is not None and eta.at_risk:
                self._warn(b, eta)
        return found

    def _warn(self, b: BatchRecord, eta: Eta) -> None:
        if b.id in self._warned:
            return
        self._warned[b.id] = None
        while len(self._warned) > 10_000:
            self._warned.popitem(last=False)
        ends = to_datetime(eta.ends_at).isoformat() if eta.ends_at is not None else "?"
        log.warning(
            "batch %s is at risk of not finishing before it expires: %d requests left at"
            " %.2f/s (%s), estimated to end %s, expires %s",
            b.id,
            b.processing,
            eta.rate or 0.0,
            "its own recent rate" if eta.basis == "batch" else "its share of the deployment's",
            ends,
            to_datetime(b.expires_at).isoformat(),
        )
