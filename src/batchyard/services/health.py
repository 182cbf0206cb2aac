"""What the probes and the metrics scrape ask of the store: that it answers (`/readyz`),
and the store-wide queue (the same from every replica)."""

from __future__ import annotations

from batchyard.store.port import Store


class HealthService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def check(self) -> None:
        """Returns when the store answers; raises StoreUnavailable when it does not."""
        await self.store.get_batch("", "")

    async def open_counts(self) -> tuple[int, int]:
        """(batches not ended, their unfinished requests), store-wide."""
        return await self.store.open_counts()
