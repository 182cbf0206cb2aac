"""The composition root: the store, the engines, the services and the worker, built from
`Settings` in one place, for `batchyard serve` (the ASGI app) and `batchyard worker`."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from batchyard.batches import BatchService
from batchyard.clock import Clock, SystemClock
from batchyard.config import Settings
from batchyard.engines.build import build_router
from batchyard.engines.router import EngineRouter
from batchyard.metrics import Metrics
from batchyard.openai_batches import OpenAIBatchService, after_batches_end, build_service
from batchyard.scheduler.worker import Worker
from batchyard.store import open_store
from batchyard.store.port import Store
from batchyard.webhooks import WebhookPolicy


@dataclass(slots=True)
class Services:
    store: Store
    router: EngineRouter
    batches: BatchService
    openai_batches: OpenAIBatchService
    metrics: Metrics
    worker: Worker | None
    """None when this process runs no worker (`--no-worker`)."""

    async def close(self) -> None:
        """The engines, then the store (call `store.open()` before use, this after)."""
        with contextlib.suppress(Exception):
            await self.router.aclose()
        await self.store.close()


def build_services(
    settings: Settings, metrics: Metrics, *, run_worker: bool, clock: Clock | None = None
) -> Services:
    clock = clock or SystemClock()
    store = open_store(settings.database, synchronous=settings.sqlite_synchronous)
    router = build_router(settings.engines, settings.cache_dir)
    batches = BatchService(
        store,
        clock,
        expiry_seconds=settings.batch_expiry_seconds,
        retention_seconds=settings.results_retention_seconds,
        public_base_url=settings.public_base_url,
        webhooks=WebhookPolicy(settings.webhook_hosts, settings.webhook_secret),
    )
    openai_batches = build_service(batches, settings)
    worker: Worker | None = None
    if run_worker:
        worker = Worker(
            store,
            router,
            settings.worker,
            clock=clock,
            finalizer=after_batches_end(batches, openai_batches),
            metrics=metrics,
        )
        batches.on_created = worker.wake  # a new batch is claimed at once, not at the next poll
    return Services(store, router, batches, openai_batches, metrics, worker)
