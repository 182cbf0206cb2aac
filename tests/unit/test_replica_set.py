"""Replicas of one model without a router (`engines/remote/replicas.py`), against
scripted servers on loopback: calls spread, a prompt prefix stays with its replica, a
replica that stops answering or keeps failing is taken out without failing the call,
and comes back in after its pause."""

from __future__ import annotations

import asyncio

import pytest

from batchyard.engines.remote import replicas
from batchyard.engines.remote.replicas import ReplicaSet
from batchyard.errors import EngineError
from batchyard.wire.messages import MessageCreateParams, MessageParam
from tests.stubs import Stub


def ask(system: str, text: str = "hi") -> MessageCreateParams:
    return MessageCreateParams(
        model="m",
        max_tokens=8,
        system=system,
        messages=[MessageParam(role="user", content=text)],
    )


def prefix(i: int) -> str:
    return f"prompt {i}: " + "you label reviews. " * 80  # past the key's 1 KB


def fleet(*stubs: Stub, capacity: int = 8) -> ReplicaSet:
    return ReplicaSet([f"{s.url}/v1" for s in stubs], capacity=capacity, admission="fixed")


def systems(stub: Stub) -> list[str]:
    return [body["messages"][0]["content"] for body in stub.received]


@pytest.mark.anyio
async def test_calls_spread_and_each_prefix_stays_with_one_replica() -> None:
    with Stub() as a, Stub() as b:
        engine = fleet(a, b)
        assert engine.slots.capacity == 16
        for round_ in range(3):
            for i in range(4):
                message = await engine.create_message(ask(prefix(i), f"r{round_}"))
                assert message.content[0].text == f"stub reply: r{round_}"  # type: ignore[union-attr]
        await engine.aclose()
    seen_a, seen_b = set(systems(a)), set(systems(b))
    assert len(seen_a) == 2 and len(seen_b) == 2 and not seen_a & seen_b
    assert len(a.received) == len(b.received) == 6


@pytest.mark.anyio
async def test_a_stopped_replica_is_taken_out_and_comes_back_after_its_pause(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(replicas, "OUT_BASE", 0.2)
    with Stub() as a:
        b = Stub()
        with b:
            engine = fleet(a, b)
            await engine.create_message(ask(prefix(0)))
            await engine.create_message(ask(prefix(1)))
            assert len(a.received) == len(b.received) == 1
        port = b.port
        # b is gone: its prefix's calls succeed on a, and b is out
        for _ in range(3):
            await engine.create_message(ask(prefix(1)))
        assert engine.in_service() == {f"{a.url}/v1": True, f"{b.url}/v1": False}
        assert len(a.received) == 4
        assert engine.slots.capacity == 8
        with Stub(port=port) as b_again:
            await asyncio.sleep(0.3)  # its pause is over: on probation
            assert not engine.in_service()[f"{b.url}/v1"]
            for i in range(2, 6):
                await engine.create_message(ask(prefix(i)))
            assert b_again.received, "the replica started again got no call"
            assert engine.in_service()[f"{b.url}/v1"]
            assert engine.slots.capacity == 16  # back in service in full
        await engine.aclose()


@pytest.mark.anyio
async def test_a_replica_that_keeps_failing_is_taken_out_without_failing_a_call() -> None:
    with Stub() as a, Stub(status=500) as b:
        engine = fleet(a, b)
        answers = [await engine.create_message(ask(prefix(i % 4), f"x{i}")) for i in range(12)]
        await engine.aclose()
    assert len(answers) == 12 and len(a.received) == 12
    assert len(b.received) == replicas.STRIKES  # then out for the rest
    assert engine.in_service()[f"{b.url}/v1"] is False


@pytest.mark.anyio
async def test_a_requests_own_error_is_not_the_replicas() -> None:
    with Stub() as a, Stub() as b:
        engine = fleet(a, b)
        with pytest.raises(EngineError) as refused:
            await engine.create_message(ask(prefix(0), "bad-400"))
        assert refused.value.error_type == "invalid_request_error"
        assert len(a.received) + len(b.received) == 1  # asked once, not failed over
        assert all(engine.in_service().values())
        await engine.aclose()


@pytest.mark.anyio
async def test_with_every_replica_out_the_call_fails_retryable() -> None:
    a, b = Stub(), Stub()
    engine = fleet(a, b)  # neither started
    with pytest.raises(EngineError) as first:
        await engine.create_message(ask(prefix(0)))
    assert first.value.retryable and "cannot reach" in first.value.message
    with pytest.raises(EngineError) as then:
        await engine.create_message(ask(prefix(0)))
    assert then.value.error_type == "overloaded_error" and then.value.retryable
    assert "no replica is in service" in then.value.message
    await engine.aclose()


@pytest.mark.anyio
async def test_a_stream_moves_to_another_replica_before_its_first_event() -> None:
    with Stub() as a:
        b = Stub()  # never started
        engine = fleet(b, a)
        events = [e async for e in engine.stream_message(ask(prefix(0), "streamed"))]
        assert events and len(a.received) == 1 and a.received[0]["stream"] is True
        assert engine.in_service()[f"{b.url}/v1"] is False
        await engine.aclose()
