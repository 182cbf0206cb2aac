"""The scheduler reading a real vLLM: admission from its /metrics with no `--capacity`,
and interactive calls served first inside vLLM (`priority`), not only in our slots.

vLLM runs 32 sequences at most (tests/vllm.py), so a batch of 64 or more sent at once
queues 32 or more inside it: what admission must avoid, and what priority must jump.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import client_for
from tests.databases import new_database
from tests.integration.test_batches_sdk import wait_ended
from tests.serverproc import Server
from tests.vllm import START_TIMEOUT, VLLM, Sampler

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(START_TIMEOUT + 300)]

MODEL = "smollm2"


def batch_requests(n: int, max_tokens: int) -> list[dict[str, Any]]:
    return [
        {
            "custom_id": f"r{i}",
            "params": {
                "model": MODEL,
                "max_tokens": max_tokens,
                "temperature": 0.0,
                "messages": [{"role": "user", "content": f"Tell a long story about ship {i}."}],
            },
        }
        for i in range(n)
    ]


def serve(vllm: VLLM, tmp: Any, *extra: str) -> Server:
    return Server(
        new_database(tmp, "db"),
        tmp / "server.log",
        ["--engine", "openai", "--upstream-url", vllm.base_url, "--model", MODEL,
         "--poll-interval", "0.05", *extra],
    )  # fmt: skip


@pytest.fixture
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return tmp_path_factory.mktemp("vllm-scheduling")


@pytest.fixture
def admitted(vllm: VLLM, tmp: Any) -> Iterator[Server]:
    server = serve(vllm, tmp)  # no --capacity: admission from vLLM's /metrics
    yield server
    server.stop()


def test_admission_keeps_vllm_full_with_a_short_queue_without_a_capacity(
    vllm: VLLM, admitted: Server
) -> None:
    client = client_for(admitted, timeout=120)
    # Four waves of vLLM's 32 seats: the ramp up and the tail are a small part of it.
    with Sampler(vllm, admitted) as seen:
        batch = client.messages.batches.create(requests=batch_requests(128, 12))  # type: ignore[arg-type]
        ended = wait_ended(client, batch.id, timeout=300)
    assert ended.request_counts.succeeded == 128
    busy = [(r, w) for r, w in zip(seen.running, seen.waiting, strict=False) if r + w >= 8]
    assert len(busy) >= 10, (seen.running, seen.waiting)
    # It grew past its slow start (8) to fill vLLM's 32 seats...
    assert max(seen.capacity) > 16, seen.capacity
    full = sum(r >= 24 for r, _ in busy)
    assert full >= len(busy) / 3, (seen.running, seen.capacity)
    # ...and kept the queue inside vLLM short: sent all at once, 32 would wait. Slow
    # start may overshoot once (it doubles until the first queue), not stay there.
    queue = sorted(w for _, w in busy)
    assert queue[len(queue) // 2] <= 8, seen.waiting
    assert max(queue) <= 32, seen.waiting


@pytest.fixture
def prioritized(vllm: VLLM, tmp: Any) -> Iterator[Server]:
    # A fixed capacity above the batch: every batch request is in vLLM (32 running, 32
    # queued) and our own slots have room, so only vLLM's priority can put the call first.
    server = serve(vllm, tmp, "--admission", "fixed", "--capacity", "100", "--engine-priority")
    yield server
    server.stop()


def test_an_interactive_call_goes_before_queued_batch_work_inside_vllm(
    vllm: VLLM, prioritized: Server
) -> None:
    client = client_for(prioritized, timeout=300)
    batch = client.messages.batches.create(requests=batch_requests(64, 16))  # type: ignore[arg-type]
    deadline = time.monotonic() + 120
    while vllm.metrics().get("vllm:num_requests_waiting", 0) < 24:
        assert time.monotonic() < deadline, "the batch never queued inside vLLM"
        time.sleep(0.1)
    message = client.messages.create(
        model=MODEL,
        max_tokens=4,
        messages=[{"role": "user", "content": "Say hello."}],
        extra_body={"temperature": 0.0},
    )
    assert message.usage.output_tokens > 0
    # First in, first out, it would wait for the 32 queued before it to start, and they
    # for the 32 running: the batch would be all but done. With priority 0 against the
    # batch's 10 it takes the first free seat, while the queued half still runs.
    unfinished = client.messages.batches.retrieve(batch.id).request_counts.processing
    assert unfinished >= 16, unfinished
    ended = wait_ended(client, batch.id, timeout=300)
    assert ended.request_counts.succeeded == 64
