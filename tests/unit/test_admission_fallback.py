"""Admission without metrics: the fallback to AIMD (said once), its latency judged per
output token and never below its start, and a load probe that survives its errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import httpx
import pytest

from batchyard.engines.remote.concurrency import EngineAdmission
from batchyard.engines.remote.upstream_load import GIVE_UP_AFTER
from batchyard.engines.slots import PrioritySlots


def metrics_transport(answer: Callable[[], httpx.Response]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/metrics"
        return answer()

    return httpx.MockTransport(handle)


@pytest.mark.anyio
async def test_absent_metrics_fall_back_to_aimd_and_say_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    text: list[str] = []

    def answer() -> httpx.Response:
        return httpx.Response(200, text=text[0]) if text else httpx.Response(404)

    client = httpx.AsyncClient(transport=metrics_transport(answer))
    slots = PrioritySlots(1024)
    admission = EngineAdmission(
        slots, 1024, mode="metrics", name="vllm", client=client,
        metrics_url="http://gpu/metrics", interval=0.01,
    )  # fmt: skip
    assert admission.probe is not None
    admission.probe.retry_interval = 0.01
    with caplog.at_level(logging.DEBUG, logger="batchyard.admission"):
        admission.start()
        await wait_for(lambda: admission.fallen_back)
        assert admission.driven_by == "aimd"
        admission.on_success(0.1)  # AIMD (slow start) grows it now
        assert slots.capacity == 9
        text.append("vllm:num_requests_running 9\nvllm:num_requests_waiting 0\n")
        await wait_for(lambda: not admission.fallen_back)
        assert admission.load is not None and admission.load.running == 9
        text[0] = "nothing here\n"
        await wait_for(lambda: admission.fallen_back)
    await admission.aclose()
    await client.aclose()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "no load metrics at http://gpu/metrics" in warnings[0].message
    assert "429s and latency" in warnings[0].message


async def wait_for(condition: Callable[[], bool]) -> None:
    """Until `condition()` holds (the probe polls every 10 ms here); at most 5 s."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the condition never held")


def test_latency_well_above_its_floor_shrinks_aimd() -> None:
    slots = PrioritySlots(1)
    admission = EngineAdmission(slots, 1024, mode="aimd", name="x")
    for _ in range(20):
        admission.on_success(1.0)
    grown = slots.capacity
    assert grown > 4
    for _ in range(20):
        admission.on_success(5.0)
    assert slots.capacity < grown


def test_longer_answers_are_no_slow_down_per_token() -> None:
    """The repro: short calls set the floor, then answers of a steady 3 s (longer, at
    the same speed per token) took whole-call AIMD from 58 to 1. Per token they are
    no slower: the limit holds (and grows)."""
    slots = PrioritySlots(1)
    admission = EngineAdmission(slots, 1024, mode="aimd", name="x")
    assert admission.adaptive is not None
    admission.adaptive.cooldown = 0.0  # every verdict acts at once: the worst case
    for _ in range(50):
        admission.on_success(0.2, 10)
    grown = slots.capacity
    assert grown >= 50
    for _ in range(200):
        admission.on_success(3.0, 150)
        assert slots.capacity >= grown


def test_a_slow_down_per_token_shrinks_aimd_to_its_start_and_only_429s_go_below() -> None:
    slots = PrioritySlots(1)
    admission = EngineAdmission(slots, 1024, mode="aimd", name="x")
    assert admission.adaptive is not None
    admission.adaptive.cooldown = 0.0
    for _ in range(50):
        admission.on_success(0.2, 10)
    assert slots.capacity >= 50
    for _ in range(200):
        admission.on_success(3.0, 10)  # 15 times slower a token
    assert slots.capacity == admission.adaptive.start == 4
    # a call that does not say its length counts whole: no lower on latency either
    for _ in range(50):
        admission.on_success(30.0)
    assert slots.capacity == 4
    admission.adaptive.latency = 0.0  # (the 429's pause: none here)
    asyncio.run(admission.on_rate_limited())
    assert slots.capacity < 4


def test_the_metrics_fallback_starts_where_the_controller_did_and_holds_it() -> None:
    """Capacity in the metrics mode's fallback: latency alone never takes it under the
    controller's start (8)."""
    slots = PrioritySlots(1)
    admission = EngineAdmission(slots, 1024, mode="metrics", name="x")
    admission.fallen_back = True  # as the probe sets it when the endpoint is absent
    assert admission.adaptive is not None
    admission.adaptive.cooldown = 0.0
    for _ in range(30):
        admission.on_success(0.2, 10)
    for _ in range(200):
        admission.on_success(5.0, 10)
    assert slots.capacity == 8


@pytest.mark.anyio
async def test_a_probe_error_is_logged_once_counted_and_the_fallback_engages(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("not an httpx error")

    client = httpx.AsyncClient(transport=httpx.MockTransport(broken))
    slots = PrioritySlots(1024)
    admission = EngineAdmission(
        slots, 1024, mode="metrics", name="vllm", client=client,
        metrics_url="http://gpu/metrics", interval=0.01,
    )  # fmt: skip
    probe = admission.probe
    assert probe is not None
    probe.retry_interval = 0.01
    with caplog.at_level(logging.DEBUG, logger="batchyard.upstream_load"):
        admission.start()
        await wait_for(lambda: admission.fallen_back and probe.failures > GIVE_UP_AFTER + 2)
    assert probe._task is not None and not probe._task.done()  # still polling
    assert probe.failure is not None and "not an httpx error" in probe.failure
    warnings = [
        r
        for r in caplog.records
        if r.name == "batchyard.upstream_load" and r.levelno >= logging.WARNING
    ]
    assert len(warnings) == 1 and warnings[0].exc_info is not None
    assert "http://gpu/metrics" in warnings[0].getMessage()
    await admission.aclose()
    await client.aclose()
