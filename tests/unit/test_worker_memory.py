"""The worker in drain mode (`run_until_idle`) on the in-memory store, a manual clock and
the fake engine: claims, retries, cancels, expiry and what follows batches ending, each
in milliseconds (events are awaited, nothing sleeps)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

import msgspec
import pytest

from batchyard.clock import ManualClock
from batchyard.config import WorkerSettings
from batchyard.engines.config import ModelConfig
from batchyard.engines.fake.engine import FakeEngine
from batchyard.engines.router import EngineRouter, Route
from batchyard.engines.slots import Priority
from batchyard.errors import EngineError
from batchyard.services.inference import Inference
from batchyard.store.port import Store
from batchyard.store.records import BatchRecord, NewBatch, OpenAIBatchRecord
from batchyard.translate.envelope import unservable, wrap_chat_body
from batchyard.wire.messages import Message, MessageCreateParams, text_of
from batchyard.worker.worker import Worker

pytestmark = pytest.mark.anyio
HOUR = 3600.0


@pytest.fixture
def store(memory_store: Store) -> Store:
    return memory_store


def ask(text: str, model: str = "fake-1") -> bytes:
    return msgspec.json.encode(
        {"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": text}]}
    )


async def submit(
    store: Store,
    clock: ManualClock,
    name: str,
    params: list[bytes],
    workspace: str = "ws",
    api_key_id: str | None = None,
) -> BatchRecord:
    """A batch `msgbatch_{name}` of requests `r0`, `r1`… expiring in an hour."""
    now = clock.now()
    batch = NewBatch(f"msgbatch_{name}", workspace, now, now + HOUR, now + 2 * HOUR, api_key_id)
    return await store.create_batch(batch, [f"r{i}" for i in range(len(params))], params)


async def outcome(
    store: Store, name: str, workspace: str = "ws"
) -> tuple[BatchRecord, dict[str, str]]:
    """The batch's record now, and each request's result type."""
    batch = await store.get_batch(workspace, f"msgbatch_{name}")
    assert batch is not None
    text = b"".join([chunk async for chunk in store.result_lines(batch)])
    lines = [msgspec.json.decode(line) for line in text.splitlines()]
    return batch, {line["custom_id"]: line["result"]["type"] for line in lines}


def counts(batch: BatchRecord) -> tuple[str, int, int, int, int, int]:
    return (
        batch.processing_status,
        batch.processing,
        batch.succeeded,
        batch.errored,
        batch.canceled,
        batch.expired,
    )


def worker(
    store: Store,
    engine: FakeEngine,
    clock: ManualClock,
    *,
    on_batches_ended: Callable[[list[str]], None] | None = None,
    finalizer: Callable[[], Awaitable[int]] | None = None,
    **settings: object,
) -> Worker:
    router = EngineRouter([Route(ModelConfig(id="fake-*"), engine)])
    return Worker(
        store,
        Inference(router, None),
        WorkerSettings(**settings),  # type: ignore[arg-type]
        clock=clock,
        on_batches_ended=on_batches_ended,
        finalizer=finalizer,
    )


class Flaky(FakeEngine):
    """Fails each prompt retryably its first `failures` times, then answers it."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.calls: Counter[str] = Counter()

    async def create_message(
        self, params: MessageCreateParams, *, priority: Priority = Priority.BATCH
    ) -> Message:
        text = text_of(params.messages[-1].content)
        self.calls[text] += 1
        if self.calls[text] <= self.failures:
            raise EngineError("overloaded_error", "Overloaded (flaky)", retryable=True)
        return await super().create_message(params, priority=priority)


class Gated(FakeEngine):
    """Holds every call until `gate` opens; `started` is set by the first call. Then it
    answers, or with `fail` fails retryably."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.fail = fail
        self.started = asyncio.Event()
        self.gate = asyncio.Event()

    async def create_message(
        self, params: MessageCreateParams, *, priority: Priority = Priority.BATCH
    ) -> Message:
        self.started.set()
        await self.gate.wait()
        if self.fail:
            raise EngineError("api_error", "Failed (gated)", retryable=True)
        return await super().create_message(params, priority=priority)


async def test_every_request_is_claimed_once_and_its_result_written(store: Store) -> None:
    clock = ManualClock()
    await submit(
        store, clock, "a", [ask(f"hello {i}") for i in range(40)], "ws_a", api_key_id="key_a"
    )
    await submit(store, clock, "b", [ask(f"hi {i}") for i in range(10)], "ws_b", api_key_id="key_b")
    w = worker(store, FakeEngine(capacity=4), clock, claim_chunk=8)
    await w.run_until_idle()

    assert w.processed == 50 and w.in_flight == 0
    a, results = await outcome(store, "a", "ws_a")
    assert counts(a) == ("ended", 0, 40, 0, 0, 0) and a.ended_at == clock.now()
    assert results == {f"r{i}": "succeeded" for i in range(40)}
    b, results = await outcome(store, "b", "ws_b")
    assert counts(b) == ("ended", 0, 10, 0, 0, 0) and len(results) == 10
    found = await store.views.result(b, "r7")
    assert found is not None
    message = msgspec.json.decode(found.line)["result"]["message"]
    assert message["content"][0]["text"].endswith("to: hi 7")
    usage = {
        (u.workspace_id, u.api_key_id): u.requests for u in await store.tenancy.usage(0, 2**40)
    }
    assert usage == {("ws_a", "key_a"): 40, ("ws_b", "key_b"): 10}
    assert await store.open_counts() == (0, 0)


async def test_a_retryable_error_is_retried_once_its_backoff_has_passed(store: Store) -> None:
    clock = ManualClock()
    await submit(store, clock, "r", [ask(f"x{i}") for i in range(3)])
    engine = Flaky(failures=1)
    w = worker(store, engine, clock, retry_base_seconds=30.0)
    await w.run_until_idle()  # every first attempt failed; the retries wait 30-37.5 s
    batch, results = await outcome(store, "r")
    assert counts(batch) == ("in_progress", 3, 0, 0, 0, 0) and results == {}
    assert w.processed == 0 and sum(engine.calls.values()) == 3

    clock.advance(29)
    await w.run_until_idle()
    assert sum(engine.calls.values()) == 3  # not yet
    clock.advance(9)
    await w.run_until_idle()
    batch, results = await outcome(store, "r")
    assert counts(batch) == ("ended", 0, 3, 0, 0, 0)
    assert results == {"r0": "succeeded", "r1": "succeeded", "r2": "succeeded"}
    assert engine.calls == {"x0": 2, "x1": 2, "x2": 2} and w.processed == 3


async def test_the_retry_budget_ends_a_request_errored(store: Store) -> None:
    clock = ManualClock()
    await submit(store, clock, "e", [ask("doomed")])
    engine = Flaky(failures=99)
    await worker(store, engine, clock, retry_base_seconds=0.0, max_attempts=3).run_until_idle()
    batch, results = await outcome(store, "e")
    assert counts(batch) == ("ended", 0, 0, 1, 0, 0) and results == {"r0": "errored"}
    assert engine.calls == {"doomed": 3}
    found = await store.views.result(batch, "r0")
    assert found is not None
    assert msgspec.json.decode(found.line)["result"]["error"]["error"]["type"] == "overloaded_error"


async def test_cancel_while_running_keeps_the_answer_in_flight(store: Store) -> None:
    clock = ManualClock()
    await submit(store, clock, "c", [ask(f"q{i}") for i in range(4)])
    engine = Gated()
    w = worker(store, engine, clock, concurrency=1)  # holds r0 only
    drain = asyncio.create_task(w.run_until_idle())
    await engine.started.wait()
    canceling = await store.cancel_batch("ws", "msgbatch_c", clock.now())
    assert canceling is not None and counts(canceling) == ("canceling", 1, 0, 0, 3, 0)
    engine.gate.set()
    await drain
    batch, results = await outcome(store, "c")
    assert counts(batch) == ("ended", 0, 1, 0, 3, 0) and batch.cancel_initiated_at == clock.now()
    assert batch.outcome == "canceled"
    assert results == {"r0": "succeeded", "r1": "canceled", "r2": "canceled", "r3": "canceled"}
    assert w.processed == 1


async def test_a_retry_in_a_canceled_batch_is_canceled_instead(store: Store) -> None:
    clock = ManualClock()
    await submit(store, clock, "c", [ask(f"q{i}") for i in range(3)])
    engine = Gated(fail=True)
    w = worker(store, engine, clock, concurrency=2, retry_base_seconds=0.0)
    drain = asyncio.create_task(w.run_until_idle())
    await engine.started.wait()
    await store.cancel_batch("ws", "msgbatch_c", clock.now())
    engine.gate.set()
    await drain
    batch, results = await outcome(store, "c")
    assert counts(batch) == ("ended", 0, 0, 0, 3, 0)
    assert set(results.values()) == {"canceled"} and len(results) == 3
    assert w.processed == 0  # the failed attempts were sent back, not finished


async def test_a_batch_past_its_expiry_is_expired_not_run(store: Store) -> None:
    clock = ManualClock()
    await submit(store, clock, "x", [ask(f"late {i}") for i in range(3)])
    clock.advance(HOUR)
    engine = Flaky(failures=0)
    ended: list[str] = []
    await worker(store, engine, clock, on_batches_ended=ended.extend).run_until_idle()
    batch, results = await outcome(store, "x")
    assert counts(batch) == ("ended", 0, 0, 0, 0, 3) and batch.outcome == "expired"
    assert results == {"r0": "expired", "r1": "expired", "r2": "expired"}
    assert engine.calls == {} and ended == []  # housekeeping ended it, not the worker's flush


async def test_an_answer_after_expiry_is_not_recorded(store: Store) -> None:
    clock = ManualClock()
    await submit(store, clock, "x", [ask("slow"), ask("queued")])
    engine = Gated()
    w = worker(store, engine, clock, concurrency=1)
    drain = asyncio.create_task(w.run_until_idle())
    await engine.started.wait()
    clock.advance(HOUR)
    report = await store.housekeeping(clock.now())
    assert report.expired_requests == 2 and report.ended_batches == ["msgbatch_x"]
    engine.gate.set()
    await drain
    batch, results = await outcome(store, "x")
    assert counts(batch) == ("ended", 0, 0, 0, 0, 2)
    assert results == {"r0": "expired", "r1": "expired"}
    assert w.processed == 0 and w.in_flight == 0  # the late answer was stale


async def test_batches_that_end_are_reported_then_finalized(store: Store) -> None:
    clock = ManualClock()
    await submit(store, clock, "plain", [ask("one"), ask("two", model="not-served")])
    chat = b'{"model":"fake-1","messages":[{"role":"user","content":"hi"}]}'
    openai = OpenAIBatchRecord(
        "batch_o", "ws", "msgbatch_o", "/v1/chat/completions", "file_in", "24h",
        None, None, clock.now(),
    )  # fmt: skip
    now = clock.now()
    await store.create_batch(
        NewBatch("msgbatch_o", "ws", now, now + HOUR, now + 2 * HOUR, dialect="openai"),
        ["a", "b", "c"],
        [wrap_chat_body(chat), wrap_chat_body(chat), unservable("embeddings are not served")],
        openai=openai,
    )
    ended: list[str] = []
    finalized: list[BatchRecord] = []

    async def finalize() -> int:
        for record, batch in await store.openai_batches.unfinalized():
            if await store.openai_batches.finalize(record.id, "file_out", None, clock.now()):
                finalized.append(batch)
        return len(finalized)

    w = worker(store, FakeEngine(), clock, on_batches_ended=ended.extend, finalizer=finalize)
    await w.run_until_idle()
    assert sorted(ended) == ["msgbatch_o", "msgbatch_plain"]
    plain, results = await outcome(store, "plain")
    assert counts(plain) == ("ended", 0, 1, 1, 0, 0)
    assert results == {"r0": "succeeded", "r1": "errored"}
    [batch] = finalized
    assert batch.id == "msgbatch_o" and counts(batch) == ("ended", 0, 2, 1, 0, 0)
    assert await store.openai_batches.unfinalized() == []
    found = await store.openai_batches.get("ws", "batch_o")
    assert found is not None
    assert (found[0].output_file_id, found[0].finalized_at) == ("file_out", clock.now())
    assert w.processed == 5 and await store.open_counts() == (0, 0)
