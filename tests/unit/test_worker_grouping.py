"""The worker keeps to one prompt-prefix group at a time (in-memory store, fake engine):
the engine sees each batch's shared system prompt in long runs, not interleaved."""

from __future__ import annotations

import itertools
from typing import Any

import msgspec
import pytest

from batchyard.clock import ManualClock
from batchyard.config import WorkerSettings
from batchyard.engines.config import ModelConfig
from batchyard.engines.fake.engine import FakeEngine
from batchyard.engines.router import EngineRouter, Route
from batchyard.services.inference import Inference
from batchyard.store.port import Store
from batchyard.store.records import NewBatch
from batchyard.wire.messages import Message, MessageCreateParams
from batchyard.wire.prefix_key import batch_prefix
from batchyard.worker.worker import Worker

pytestmark = pytest.mark.anyio
HOUR = 3600.0


@pytest.fixture
def store(memory_store: Store) -> Store:
    return memory_store


class Recording(FakeEngine):
    """Notes the system prompt of every call, in the order the calls start."""

    def __init__(self) -> None:
        super().__init__(capacity=4)
        self.systems: list[str] = []

    async def create_message(self, params: MessageCreateParams, *args: Any, **kw: Any) -> Message:
        self.systems.append(str(params.system))
        return await super().create_message(params, *args, **kw)


def params(system: str, item: int) -> bytes:
    return msgspec.json.encode(
        {
            "model": "fake-1",
            "max_tokens": 8,
            "system": system,
            "messages": [{"role": "user", "content": f"item {item}"}],
        }
    )


async def run(store: Store, prefix_run: int | None) -> list[str]:
    clock = ManualClock()
    for name, ws in (("a", "ws_a"), ("b", "ws_b"), ("c", "ws_a"), ("d", "ws_b")):
        system = f"You label items for task {name}. " * 40  # ~1.4 KB, past PREFIX_BYTES
        batch = [params(system, i) for i in range(24)]
        now = clock.now()
        new = NewBatch(
            f"msgbatch_{name}", ws, now, now + HOUR, now + 2 * HOUR, prefix=batch_prefix(batch)
        )
        await store.create_batch(new, [f"r{i}" for i in range(24)], batch)
    engine = Recording()
    router = EngineRouter([Route(ModelConfig(id="fake-*"), engine)])
    await Worker(
        store, Inference(router, None), WorkerSettings(prefix_run=prefix_run), clock=clock
    ).run_until_idle()
    assert len(engine.systems) == 96
    return engine.systems


def switches(systems: list[str]) -> int:
    return sum(a != b for a, b in itertools.pairwise(systems))


async def test_grouped_claims_run_each_prompt_prefix_together(store: Store) -> None:
    systems = await run(store, None)
    assert switches(systems) <= 6, systems  # 4 runs, and a claim that spans two at most


async def test_without_grouping_the_batches_interleave(store: Store) -> None:
    assert switches(await run(store, 0)) >= 30  # every claim of 8 takes 2 from each


async def test_a_short_run_still_serves_every_batch_in_turn(store: Store) -> None:
    systems = await run(store, 8)
    first_runs = []
    for s in systems:
        if s not in first_runs:
            first_runs.append(s)
    assert len(first_runs) == 4
    assert switches(systems) >= 10  # runs of about 8, rotating across the four
