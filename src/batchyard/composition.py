"""The composition root: the store, the engines, the services and the worker, built from
`Settings` in one place, for `batchyard serve` (the ASGI app) and `batchyard worker`;
and the store's tenancy alone, for `batchyard keys|workspaces`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from batchyard.auth.tenancy import Tenancy
from batchyard.clock import Clock, SystemClock
from batchyard.config import Settings
from batchyard.engines.build import build_router
from batchyard.engines.router import EngineRouter
from batchyard.metrics import Metrics
from batchyard.services.costs import CostService
from batchyard.services.dashboard import DashboardService
from batchyard.services.files import FileService
from batchyard.services.health import HealthService
from batchyard.services.inference import Inference
from batchyard.services.message_batches import BatchService
from batchyard.services.openai_batches import OpenAIBatchService
from batchyard.services.responses import Responses
from batchyard.services.usage import UsageService
from batchyard.services.webhooks import WebhookPolicy, WebhookSender
from batchyard.store import MEMORY_URL, is_postgres, open_store
from batchyard.store.blobs import BlobStore, LocalBlobs, MemoryBlobs
from batchyard.store.port import Store
from batchyard.worker.worker import Worker


@dataclass(slots=True)
class Services:
    store: Store
    router: EngineRouter
    batches: BatchService
    openai_batches: OpenAIBatchService
    files: FileService
    tenancy: Tenancy
    usage: UsageService
    inference: Inference
    responses: Responses
    costs: CostService
    dashboard: DashboardService
    health: HealthService
    metrics: Metrics
    worker: Worker | None
    """None when this process runs no worker (`--no-worker`)."""

    async def open(self) -> None:
        """Connect the store and bring its schema up to date (before any use)."""
        await self.store.open()

    async def close(self) -> None:
        """The engines, then the store (call `open()` before use, this after)."""
        with contextlib.suppress(Exception):
            await self.router.aclose()
        await self.store.close()


def build_services(
    settings: Settings, metrics: Metrics, *, run_worker: bool, clock: Clock | None = None
) -> Services:
    clock = clock or SystemClock()
    store = open_store(settings.database, synchronous=settings.sqlite_synchronous)
    router = build_router(settings.engines, settings.cache_dir)
    metrics.watch_engines(router.engines)
    batches = BatchService(
        store,
        clock,
        expiry_seconds=settings.batch_expiry_seconds,
        retention_seconds=settings.results_retention_seconds,
        public_base_url=settings.public_base_url,
        webhooks=WebhookPolicy(settings.webhook_hosts, settings.webhook_secret),
        on_ended=metrics.observe_batch,
    )
    files = FileService(
        store.files,
        blob_store(settings, store),
        clock,
        max_bytes=settings.max_file_bytes,
        quota_bytes=settings.file_quota_bytes,
    )
    openai_batches = OpenAIBatchService(batches, files)
    usage = UsageService(store.tenancy, clock)
    inference = Inference(router, files, usage, metrics)
    worker: Worker | None = None
    if run_worker:
        worker = Worker(
            store,
            inference,
            settings.worker,
            clock=clock,
            finalizer=after_batches_end(batches, openai_batches),
            metrics=metrics,
        )
        batches.on_created = worker.wake  # a new batch is claimed at once, not at the next poll
    return Services(
        store=store,
        router=router,
        batches=batches,
        openai_batches=openai_batches,
        files=files,
        tenancy=Tenancy(store.tenancy, clock),
        usage=usage,
        inference=inference,
        responses=Responses(store.responses),
        costs=CostService(
            store.tenancy,
            router.config_of,
            clock,
            priced=any(r.model.prices is not None for r in router.routes),
        ),
        dashboard=DashboardService(store, clock, eta=batches.eta),
        health=HealthService(store),
        metrics=metrics,
        worker=worker,
    )


def blob_store(settings: Settings, store: Store) -> BlobStore:
    """Where file bytes live: in the database on PostgreSQL (API and worker processes then
    share no disk), in memory for `memory://`, else in the files directory beside SQLite."""
    if is_postgres(settings.database):
        from batchyard.store.blobs_pg import PostgresBlobs
        from batchyard.store.postgres import PostgresStore

        assert isinstance(store, PostgresStore)
        return PostgresBlobs(store)
    if settings.database == MEMORY_URL:
        return MemoryBlobs()
    return LocalBlobs(settings.files_dir)


def after_batches_end(
    batches: BatchService, openai: OpenAIBatchService
) -> Callable[[], Awaitable[int]]:
    """What workers do when batches end (and every housekeeping interval): the OpenAI
    output files, the webhooks, then the deletion of expired files."""
    sender = WebhookSender(batches.store.webhooks, batches.webhooks, batches.to_wire)

    steps = (openai.finalize_ended, sender.deliver_due, openai.files.delete_expired)

    async def run() -> int:
        done, failed = 0, None
        for step in steps:  # each runs whatever became of the ones before
            try:
                done += await step()
            except Exception as exc:
                failed = failed or exc
        if failed is not None:
            raise failed  # the worker logs it (a store outage as such)
        return done

    return run


@contextlib.asynccontextmanager
async def open_tenancy(database: str) -> AsyncIterator[Tenancy]:
    """Workspaces and keys on the store at `database`, opened for one command, then closed."""
    store = open_store(database)
    await store.open()
    try:
        yield Tenancy(store.tenancy, SystemClock())
    finally:
        await store.close()
