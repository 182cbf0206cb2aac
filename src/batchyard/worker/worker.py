"""The worker: claim leased requests, run them on engines, record outcomes in group commits.

Named loops share one task group:
- `claim`: keeps up to `concurrency` requests held, claiming chunks from the store;
- `flush`: writes finished outcomes in one transaction per round (group commit);
- `heartbeat`: extends the leases of held requests so long engine calls keep them;
- `housekeeping`: requeues lapsed leases, expires and archives batches;
- `status`: writes the worker's own report (load, counts) for the dashboard;
- `finalize`: what follows batches ending (metrics, OpenAI output files, webhooks).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable

from batchyard.clock import Clock, SystemClock
from batchyard.config import WorkerSettings
from batchyard.errors import EngineError, StoreUnavailable
from batchyard.metrics import Metrics
from batchyard.services.inference import Inference
from batchyard.store.claims import Grouping
from batchyard.store.layout import RequestState
from batchyard.store.port import Store
from batchyard.store.records import ClaimedRequest, EngineLoad, Outcome, WorkerStatus
from batchyard.worker.attempts import Attempts

log = logging.getLogger("batchyard.worker")


def _store_trouble(exc: Exception, what: str) -> None:
    """A store outage (restart, full disk) is one line a time; anything else, a traceback."""
    if isinstance(exc, StoreUnavailable):
        log.warning("%s: %s", what, exc)
    else:
        log.error("%s", what, exc_info=exc)


class Worker:
    def __init__(
        self,
        store: Store,
        inference: Inference,
        settings: WorkerSettings | None = None,
        *,
        clock: Clock | None = None,
        worker_id: str | None = None,
        on_batches_ended: Callable[[list[str]], None] | None = None,
        finalizer: Callable[[], Awaitable[int]] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.router = inference.router
        self.settings = settings or WorkerSettings()
        self.clock = clock or SystemClock()
        self.id = worker_id or f"wrk_{uuid.uuid4().hex[:16]}"
        self.on_batches_ended = on_batches_ended
        self.metrics = metrics
        self.finalizer = finalizer
        """Runs after batches end (and every housekeeping interval): e.g. writes the
        OpenAI dialect's output files."""
        self._ended = asyncio.Event()
        self._ended_ids: list[str] = []
        self.grouping = Grouping(self.prefix_run) if self.settings.prefix_run != 0 else None
        """Which prompt-prefix group this worker's claims keep to (None: no grouping)."""
        self._held: dict[int, ClaimedRequest] = {}
        self._pending: list[Outcome] = []
        # key -> (task, monotonic deadline); the heartbeat cancels overdue calls.
        self._running: dict[int, tuple[asyncio.Task[None], float]] = {}
        self._timed_out: set[int] = set()
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._outcomes = asyncio.Event()
        self._stopping = False
        self.processed = 0
        """Requests this worker finished (succeeded or errored; retries not counted)."""
        self.started_at = self.clock.now()
        self._attempts = Attempts(inference, self.settings, self.clock, metrics)

    # --- public ------------------------------------------------------------------

    @property
    def concurrency(self) -> int:
        """How many requests to hold: twice what the engines take at once now (their
        admission may change it), so that the spare half waits in the engines' slots
        and a finished request is replaced at once, not after the next claim."""
        if self.settings.concurrency:
            return self.settings.concurrency
        return 2 * sum(e.slots.capacity for e in self.router.engines) or 1

    @property
    def prefix_run(self) -> int:
        """Requests claimed from one prompt-prefix group before others get their turn:
        as set, else four times the concurrency now."""
        return self.settings.prefix_run or 4 * self.concurrency

    @property
    def in_flight(self) -> int:
        """Requests this worker holds now (running, waiting for a slot, or unrecorded)."""
        return len(self._held)

    def status(self, stopped: bool = False) -> WorkerStatus:
        """This worker's report of itself (host, load, counts), as the store keeps it."""
        now = self.clock.now()
        return WorkerStatus(
            id=self.id,
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=self.started_at,
            seen_at=now,
            stopped_at=now if stopped else None,
            in_flight=self.in_flight,
            processed=self.processed,
            engines=[
                EngineLoad(e.name, e.slots.capacity, e.slots.in_use, e.slots.waiting)
                for e in self.router.engines
            ],
        )

    def wake(self) -> None:
        """New work may be claimable (a batch was created): claim now, don't wait to poll."""
        self._wake.set()

    async def run(self) -> None:
        """Run until cancelled or `stop()`; then finish in-flight work within the grace period."""
        try:
            async with asyncio.TaskGroup() as tg:
                flusher = tg.create_task(self._flush_loop(), name="worker.flush")
                beat = tg.create_task(self._heartbeat_loop(), name="worker.heartbeat")
                house = tg.create_task(self._housekeeping_loop(), name="worker.housekeeping")
                final = tg.create_task(self._finalize_loop(), name="worker.finalize")
                status = tg.create_task(self._status_loop(), name="worker.status")
                try:
                    await self._claim_loop(drain=False)
                finally:
                    await self._drain_in_flight()
                    for task in (flusher, beat, house, final, status):
                        task.cancel()
        finally:
            await self._flush()
            with contextlib.suppress(Exception):  # a store that is down can't hold up the exit
                await asyncio.wait_for(self.store.workers.report(self.status(stopped=True)), 5)

    async def run_until_idle(self) -> None:
        """Drain mode: claim and run until nothing is claimable and nothing is held."""
        await self.store.housekeeping(self.clock.now())
        async with asyncio.TaskGroup() as tg:
            flusher = tg.create_task(self._flush_loop(), name="worker.flush")
            beat = tg.create_task(self._heartbeat_loop(), name="worker.heartbeat")
            try:
                await self._claim_loop(drain=True)
            finally:
                await self._drain_in_flight()
                flusher.cancel()
                beat.cancel()
        await self._flush()
        await self.store.housekeeping(self.clock.now())
        if self.finalizer:
            await self.finalizer()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    # --- loops -------------------------------------------------------------------

    async def _claim_loop(self, *, drain: bool) -> None:
        s = self.settings
        while not self._stopping:
            room = self.concurrency - len(self._held)
            claimed: list[ClaimedRequest] = []
            if room > 0:
                self._wake.clear()
                if self.grouping is not None:
                    self.grouping.run = self.prefix_run  # follows the engines' admission
                try:
                    claimed = await self.store.claim_requests(
                        self.id,
                        self.clock.now(),
                        s.lease_seconds,
                        min(room, s.claim_chunk),
                        self.grouping,
                    )
                except Exception as exc:
                    _store_trouble(exc, "claim failed; retrying")
                    await asyncio.sleep(min(s.poll_seconds, 1.0))
                    continue
                deadline = time.monotonic() + s.engine_timeout_seconds
                for request in claimed:
                    self._held[request.key] = request
                    task = asyncio.create_task(self._execute(request))
                    self._running[request.key] = (task, deadline)
                if self.metrics and claimed:
                    self.metrics.in_flight.set(self.in_flight)
            if claimed:
                await asyncio.sleep(0)
                continue
            if drain and not self._held:
                return
            self._progress.clear()
            waits = [asyncio.ensure_future(self._progress.wait())]
            if room > 0:
                waits.append(asyncio.ensure_future(self._wake.wait()))
            _, pending = await asyncio.wait(
                waits, timeout=s.poll_seconds, return_when=asyncio.FIRST_COMPLETED
            )
            for w in pending:
                w.cancel()

    async def _execute(self, request: ClaimedRequest) -> None:
        try:
            outcome = await self._attempts.run(request)
        except asyncio.CancelledError:
            if request.key not in self._timed_out:
                raise
            self._timed_out.discard(request.key)
            timeout = EngineError(
                "timeout_error", "The engine did not answer in time", retryable=True
            )
            outcome = self._attempts.failed(request, timeout)
        except Exception as exc:  # never lose the request: it will be retried
            log.exception("unexpected failure running %s", request.custom_id)
            outcome = self._attempts.failed(
                request, EngineError("api_error", str(exc), retryable=True)
            )
        finally:
            self._running.pop(request.key, None)
            # However the call ended, a timeout mark must not outlive it: the
            # request's next attempt (same key) needs its own watchdog.
            self._timed_out.discard(request.key)
        self._pending.append(outcome)
        self._outcomes.set()

    async def _flush_loop(self) -> None:
        while True:
            await self._outcomes.wait()
            self._outcomes.clear()
            await self._flush()

    async def _flush(self) -> None:
        while self._pending:
            outcomes, self._pending = self._pending, []
            try:
                report = await self.store.record_outcomes(self.id, outcomes, self.clock.now())
            except Exception as exc:
                _store_trouble(exc, f"recording {len(outcomes)} outcomes failed; retrying")
                self._pending[:0] = outcomes
                await asyncio.sleep(0.5)
                continue
            for o in outcomes:
                self._held.pop(o.key, None)
            self.processed += sum(o.state != RequestState.QUEUED for o in report.applied)
            if self.metrics:
                self._count(report.applied)  # not the stale ones the store refused
            if report.stale:
                log.info("%d outcomes were stale (lease lost or batch ended)", report.stale)
            self._batches_ended(report.ended_batches)
            if any(o.state == RequestState.QUEUED for o in outcomes):
                self._wake.set()
            self._progress.set()

    def _count(self, outcomes: list[Outcome]) -> None:
        assert self.metrics is not None
        m = self.metrics
        for o in outcomes:
            kind = {RequestState.SUCCEEDED: "succeeded", RequestState.ERRORED: "errored"}
            m.outcomes.labels(kind.get(o.state, "retried")).inc()
            if o.usage is not None:
                m.count_tokens("batch", o.usage)
        m.in_flight.set(self.in_flight)

    async def _status_loop(self) -> None:
        while True:
            try:
                await self.store.workers.report(self.status())
            except Exception as exc:
                _store_trouble(exc, "writing the worker's status failed")
            await asyncio.sleep(self.settings.status_seconds)

    async def _heartbeat_loop(self) -> None:
        interval = min(self.settings.lease_seconds / 3, self.settings.engine_timeout_seconds / 4)
        while True:
            await asyncio.sleep(interval)
            self._cancel_overdue()
            if self._held:
                try:
                    await self.store.extend_leases(
                        self.id,
                        list(self._held),
                        self.clock.now() + self.settings.lease_seconds,
                    )
                except Exception as exc:
                    _store_trouble(exc, "lease heartbeat failed")

    def _cancel_overdue(self) -> None:
        """Engine calls past their deadline are cancelled and retried (a hung call
        would otherwise keep its lease alive through the heartbeat forever)."""
        now = time.monotonic()
        for key, (task, deadline) in list(self._running.items()):
            if deadline < now and key not in self._timed_out:
                self._timed_out.add(key)
                task.cancel()

    async def _housekeeping_loop(self) -> None:
        while True:
            try:
                report = await self.store.housekeeping(self.clock.now())
            except Exception as exc:
                _store_trouble(exc, "housekeeping failed")
            else:
                if report.reclaimed:
                    log.info("requeued %d requests whose lease ran out", report.reclaimed)
                    self._wake.set()
                self._batches_ended(report.ended_batches)
            await asyncio.sleep(self.settings.housekeeping_seconds)

    def _batches_ended(self, batch_ids: list[str]) -> None:
        if batch_ids:
            if self.metrics:
                self._ended_ids.extend(batch_ids)
            self._ended.set()
            if self.on_batches_ended:
                self.on_batches_ended(batch_ids)

    async def _finalize_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ended.wait(), self.settings.housekeeping_seconds)
            self._ended.clear()
            try:
                await self._observe_ended()
                if self.finalizer:
                    await self.finalizer()
            except Exception as exc:
                _store_trouble(exc, "finalizing ended batches failed")

    async def _observe_ended(self) -> None:
        """The durations of the batches this worker ended, for /metrics."""
        ids, self._ended_ids = self._ended_ids, []
        if ids and self.metrics:
            for record in await self.store.views.records(ids):
                self.metrics.observe_batch(record)

    async def _drain_in_flight(self) -> None:
        if self._running:
            _, pending = await asyncio.wait(
                [task for task, _ in self._running.values()],
                timeout=self.settings.shutdown_grace_seconds,
            )
            for task in pending:
                task.cancel()
