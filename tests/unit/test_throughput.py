"""ETAs as the services ask them (services.throughput) on the in-memory store: one read
of the open batches per sample, shared by every ETA asked meanwhile; ended batches'
last finishes; a batch at risk logged once; the batch objects of both dialects."""

from __future__ import annotations

import logging

import pytest

from batchyard.clock import ManualClock
from batchyard.services.message_batches import BatchService
from batchyard.services.throughput import Throughput
from batchyard.store import Store
from batchyard.store.layout import RequestState
from batchyard.store.records import BatchRecord, NewBatch, Outcome

pytestmark = pytest.mark.anyio
HOUR = 3600.0


@pytest.fixture
def store(memory_store: Store) -> Store:
    return memory_store


async def create(store: Store, clock: ManualClock, name: str, n: int, expiry: float) -> None:
    now = clock.now()
    new = NewBatch(f"msgbatch_{name}", "ws", now, now + expiry, now + 48 * HOUR)
    await store.create_batch(new, [f"r{i}" for i in range(n)], [b"{}"] * n)


async def finish(store: Store, clock: ManualClock, n: int) -> None:
    claimed = await store.claim_requests("w", clock.now(), 600, n)
    ok = [Outcome(c.key, 1, RequestState.SUCCEEDED, b"{}") for c in claimed]
    await store.record_outcomes("w", ok, clock.now())


async def record(store: Store, name: str) -> BatchRecord:
    found = await store.get_batch("ws", f"msgbatch_{name}")
    assert found is not None
    return found


class CountingViews:
    """Counts the reads of the open batches."""

    def __init__(self, store: Store) -> None:
        self.reads = 0
        self._open = store.views.open_batches

        async def counted(limit: int = 10_000) -> list[BatchRecord]:
            self.reads += 1
            return await self._open(limit)

        store.views.open_batches = counted  # type: ignore[method-assign]


async def test_one_read_per_sample_and_a_rate_from_the_second(store: Store) -> None:
    clock = ManualClock()
    reads = CountingViews(store)
    eta = Throughput(store, clock, sample_seconds=2.0)
    await create(store, clock, "a", 200, 24 * HOUR)
    first = await eta.of(await record(store, "a"))
    assert first is not None and first.basis == "unknown" and first.ends_at is None
    for _ in range(5):  # polls within the sample interval: no more reads
        clock.advance(0.3)
        await eta.of(await record(store, "a"))
    assert reads.reads == 1
    await finish(store, clock, 20)
    clock.advance(0.6)  # 20 in 2.1 s since the first sample
    found = await eta.of(await record(store, "a"))
    assert reads.reads == 2
    assert found is not None and found.basis == "batch"
    assert found.rate == pytest.approx(20 / 2.1)
    assert found.ends_at == pytest.approx(clock.now() + 180 / (20 / 2.1))
    assert not found.at_risk


async def test_at_risk_is_logged_once_and_counted(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    eta = Throughput(store, clock)
    await create(store, clock, "slow", 1000, 60.0)  # a minute to do 1000 at ~5/s
    await create(store, clock, "fine", 10, 24 * HOUR)
    await eta.at_risk()
    for _ in range(3):
        clock.advance(2.0)
        await finish(store, clock, 10)
    with caplog.at_level(logging.WARNING, "batchyard.eta"):
        risky = await eta.at_risk()
        assert [b.id for b, _ in risky] == ["msgbatch_slow"]
        again = await eta.of(await record(store, "slow"))
        assert again is not None and again.at_risk
    warned = [r for r in caplog.records if "msgbatch_slow" in r.getMessage()]
    assert len(warned) == 1 and "at risk" in warned[0].getMessage()


async def test_the_batch_object_carries_it_while_running(store: Store) -> None:
    clock = ManualClock()
    service = BatchService(store, clock, expiry_seconds=24 * HOUR, retention_seconds=48 * HOUR)
    created = await service.create("ws", b'{"requests":[{"custom_id":"a","params":{}}]}')
    assert created.batchyard_eta is not None and created.batchyard_eta.ends_at is None
    clock.advance(3)
    await finish(store, clock, 1)
    ended = await service.retrieve("ws", created.id)
    assert ended.processing_status == "ended" and ended.batchyard_eta is None


async def test_the_sample_a_call_takes_is_in_its_own_eta(store: Store) -> None:
    """The store's read takes time: the sample is stamped when it came back, and the
    ETA asked with it counts it (not only from the next call on)."""
    clock = ManualClock()
    opened = store.views.open_batches

    async def slow(limit: int = 10_000) -> list[BatchRecord]:
        clock.advance(0.5)
        return await opened(limit)

    store.views.open_batches = slow  # type: ignore[method-assign]
    eta = Throughput(store, clock, sample_seconds=2.0)
    await create(store, clock, "a", 200, 24 * HOUR)
    await eta.of(await record(store, "a"))  # the first sample
    await finish(store, clock, 20)
    clock.advance(2.0)
    await create(store, clock, "b", 50, 24 * HOUR)  # nothing of its own yet
    found = await eta.of(await record(store, "b"))  # this read stamps its sample at 3.0 s
    assert found is not None and found.basis == "share"
    rate = 20 / 2.5 / 2  # 20 between the samples; `a` and `b` share the deployment's
    assert found.rate == pytest.approx(rate)
    assert found.ends_at == pytest.approx(clock.now() + 50 / rate)
