"""Priority slots, AIMD and the mapping of upstream HTTP answers to engine errors."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from batchyard.engines.remote.errors import AdaptiveLimit, error_for_status, retry_after
from batchyard.engines.slots import Priority, PrioritySlots


@pytest.mark.anyio
async def test_waiting_interactive_calls_go_before_batch_work() -> None:
    slots = PrioritySlots(1)
    await slots.acquire(Priority.BATCH)
    order: list[str] = []

    async def take(name: str, priority: Priority) -> None:
        await slots.acquire(priority)
        order.append(name)
        slots.release()

    batch = asyncio.create_task(take("batch", Priority.BATCH))
    await asyncio.sleep(0)
    interactive = asyncio.create_task(take("interactive", Priority.INTERACTIVE))
    await asyncio.sleep(0)
    assert slots.waiting == 2
    slots.release()
    await asyncio.gather(batch, interactive)
    assert order == ["interactive", "batch"]
    assert slots.in_use == 0


@pytest.mark.anyio
async def test_cancelled_waiter_leaves_no_hole() -> None:
    slots = PrioritySlots(1)
    await slots.acquire(Priority.BATCH)
    waiter = asyncio.create_task(slots.acquire(Priority.BATCH))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    slots.release()
    assert slots.in_use == 0 and slots.waiting == 0
    await asyncio.wait_for(slots.acquire(Priority.BATCH), 1)


@pytest.mark.anyio
async def test_waiter_cancelled_while_a_release_passes_it_over() -> None:
    """The engine timeout cancels a waiting call just as a slot frees up: the release
    skips the cancelled waiter, and the waiter then leaves with CancelledError (it
    once raised ValueError, which left the request's timeout mark behind)."""
    slots = PrioritySlots(1)
    await slots.acquire(Priority.BATCH)
    waiter = asyncio.create_task(slots.acquire(Priority.BATCH))
    other = asyncio.create_task(slots.acquire(Priority.BATCH))
    await asyncio.sleep(0)
    waiter.cancel()  # its future is cancelled now; the task has not run yet
    slots.release()  # passes over it to `other`
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await asyncio.wait_for(other, 1)
    assert slots.in_use == 1 and slots.waiting == 0


@pytest.mark.anyio
async def test_shrinking_capacity_holds_back_new_work() -> None:
    slots = PrioritySlots(2)
    await slots.acquire(Priority.BATCH)
    await slots.acquire(Priority.BATCH)
    slots.set_capacity(1)
    waiter = asyncio.create_task(slots.acquire(Priority.BATCH))
    slots.release()  # 1 in use, capacity 1: the waiter must keep waiting
    await asyncio.sleep(0.01)
    assert not waiter.done()
    slots.release()
    await asyncio.wait_for(waiter, 1)


@pytest.mark.anyio
async def test_aimd_slow_start_then_gentle_probing() -> None:
    slots = PrioritySlots(64)
    limit = AdaptiveLimit(slots, 64, cooldown=0.05, start=4)
    assert limit.limit == 4
    for _ in range(20):
        limit.on_success(0.001)
    assert limit.limit == 24  # slow start: one more slot per success
    started = asyncio.get_running_loop().time()
    await limit.on_rate_limited()
    assert asyncio.get_running_loop().time() - started >= 0.0009  # held about one call's time
    assert limit.limit == 12  # leaving slow start halves
    await limit.on_rate_limited()  # same storm (within the cooldown): no second decrease
    assert limit.limit == 12
    for _ in range(50):
        limit.on_success(0.001)
    assert limit.limit == 12  # no growth until a quiet cooldown has passed
    await asyncio.sleep(0.06)
    limit.on_success(0.001)
    limit.on_success(0.001)
    assert limit.limit == 13  # then one slot per quiet cooldown
    await asyncio.sleep(0.06)
    await limit.on_rate_limited()
    assert limit.limit == 11  # later storms take 10% off (13 * 0.9 = 11.7)
    limit.cooldown = 0.001
    for _ in range(200):
        await asyncio.sleep(0.002)
        limit.on_success(0.001)
        if limit.limit == 64:
            break
    assert limit.limit == 64  # never above the configured capacity


def response(status: int, body: object = None, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    ("status", "error_type", "retryable"),
    [
        (429, "rate_limit_error", True),
        (529, "overloaded_error", True),
        (503, "overloaded_error", True),
        (500, "api_error", True),
        (502, "api_error", True),
        (504, "timeout_error", True),
        (408, "timeout_error", True),
        (400, "invalid_request_error", False),
        (401, "authentication_error", False),
        (403, "permission_error", False),
        (404, "not_found_error", False),
        (413, "request_too_large", False),
        (422, "invalid_request_error", False),
    ],
)
def test_status_mapping(status: int, error_type: str, retryable: bool) -> None:
    error = error_for_status(response(status, {"error": {"message": "why"}}), "up")
    assert (error.error_type, error.retryable) == (error_type, retryable)
    assert "up answered" in error.message and "why" in error.message


def test_retry_after_forms() -> None:
    assert retry_after(httpx.Headers({"retry-after": "2.5"})) == 2.5
    assert retry_after(httpx.Headers({"retry-after-ms": "150"})) == 0.15
    assert retry_after(httpx.Headers({})) is None
    date = retry_after(httpx.Headers({"retry-after": "Wed, 21 Oct 2099 07:28:00 GMT"}))
    assert date is not None and date > 1000
    assert retry_after(httpx.Headers({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0
