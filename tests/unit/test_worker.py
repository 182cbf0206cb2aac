"""The worker in drain mode (`run_until_idle`) over a real SQLite store and the fake engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from batchyard.clock import ManualClock
from batchyard.config import WorkerSettings
from batchyard.engines.config import ModelConfig
from batchyard.engines.fake.engine import FakeEngine
from batchyard.engines.router import EngineRouter, Route
from batchyard.engines.slots import Priority
from batchyard.services.inference import Inference
from batchyard.store.records import NewBatch
from batchyard.store.sqlite import SQLiteStore
from batchyard.wire.messages import Message, MessageCreateParams
from batchyard.worker.worker import Worker

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "w.sqlite", synchronous="NORMAL")
    await s.open()
    yield s
    await s.close()


def params(text: str, model: str = "fake-1", **extra: object) -> bytes:
    body = {"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": text}]}
    return msgspec.json.encode({**body, **extra})


async def results(store: SQLiteStore, batch_id: str = "msgbatch_w") -> dict[str, dict[str, object]]:
    batch = await store.get_batch("ws", batch_id)
    assert batch is not None
    text = b"".join([c async for c in store.result_lines(batch)])
    lines = [msgspec.json.decode(line) for line in text.splitlines()]
    return {line["custom_id"]: line["result"] for line in lines}


async def create(store: SQLiteStore, clock: ManualClock, items: list[tuple[str, bytes]]) -> None:
    now = clock.now()
    batch = NewBatch("msgbatch_w", "ws", now, now + 3600, now + 7200)
    await store.create_batch(batch, [i for i, _ in items], [p for _, p in items])


def worker(
    store: SQLiteStore, engine: FakeEngine, clock: ManualClock, **settings: object
) -> Worker:
    router = EngineRouter([Route(ModelConfig(id="fake-*"), engine)])
    return Worker(store, Inference(router, None), WorkerSettings(**settings), clock=clock)  # type: ignore[arg-type]


async def test_drain_runs_every_request_once(store: SQLiteStore) -> None:
    clock = ManualClock()
    await create(store, clock, [(f"r{i}", params(f"hello {i}")) for i in range(300)])
    w = worker(store, FakeEngine(capacity=16), clock, claim_chunk=50)
    await w.run_until_idle()
    assert w.processed == 300
    batch = await store.get_batch("ws", "msgbatch_w")
    assert batch is not None and batch.processing_status == "ended" and batch.succeeded == 300
    got = await results(store)
    assert len(got) == 300
    message = got["r7"]["message"]
    assert message["content"][0]["text"].endswith("to: hello 7")  # type: ignore[index]
    assert message["usage"] == {"input_tokens": 2, "output_tokens": 6, "service_tier": "batch"}  # type: ignore[index]


async def test_invalid_params_and_unknown_model_end_errored(store: SQLiteStore) -> None:
    clock = ManualClock()
    await create(
        store,
        clock,
        [
            ("ok", params("hi")),
            ("model", params("hi", model="other")),
            ("tokens", params("hi", max_tokens=0)),
            ("temp", params("hi", temperature=3)),
            (
                "role",
                msgspec.json.encode(
                    {
                        "model": "fake-1",
                        "max_tokens": 5,
                        "messages": [{"role": "assistant", "content": "x"}],
                    }
                ),
            ),
        ],
    )
    await worker(store, FakeEngine(), clock).run_until_idle()
    got = await results(store)
    assert got["ok"]["type"] == "succeeded"
    for custom_id, fragment in [
        ("model", "'other' is not served"),
        ("tokens", "max_tokens"),
        ("temp", "temperature"),
        ("role", "first message"),
    ]:
        error = got[custom_id]["error"]["error"]  # type: ignore[index]
        assert got[custom_id]["type"] == "errored"
        assert error["type"] == "invalid_request_error" and fragment in error["message"]


async def test_retryable_errors_are_retried_until_success(store: SQLiteStore) -> None:
    clock = ManualClock()
    await create(store, clock, [(f"r{i}", params(str(i))) for i in range(100)])
    engine = FakeEngine(error_rate=0.5, seed=1)
    w = worker(store, engine, clock, retry_base_seconds=0.0, max_attempts=50)
    await w.run_until_idle()
    batch = await store.get_batch("ws", "msgbatch_w")
    assert batch is not None and batch.succeeded == 100 and batch.processing_status == "ended"


async def test_retry_budget_ends_errored(store: SQLiteStore) -> None:
    clock = ManualClock()
    await create(store, clock, [("r", params("x"))])
    w = worker(store, FakeEngine(error_rate=1.0), clock, retry_base_seconds=0.0, max_attempts=3)
    await w.run_until_idle()
    got = await results(store)
    assert got["r"]["type"] == "errored"
    import sqlite3

    attempts = sqlite3.connect(store.path).execute("SELECT attempts FROM requests").fetchone()[0]
    assert attempts == 3


class HangsOnce(FakeEngine):
    """Never answers its first call; answers the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def create_message(
        self, params: MessageCreateParams, *, priority: Priority = Priority.BATCH
    ) -> Message:
        self.calls += 1
        if self.calls == 1:
            await asyncio.Event().wait()
        return await super().create_message(params, priority=priority)


async def test_hung_engine_call_times_out_and_is_retried(store: SQLiteStore) -> None:
    clock = ManualClock()
    await create(store, clock, [("r", params("x"))])
    engine = HangsOnce()
    w = worker(store, engine, clock, engine_timeout_seconds=0.2, retry_base_seconds=0.0)
    await asyncio.wait_for(w.run_until_idle(), 10)
    assert engine.calls == 2
    got = await results(store)
    assert got["r"]["type"] == "succeeded"
