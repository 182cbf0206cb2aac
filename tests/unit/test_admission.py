"""Admission from the engine's own load: the metrics parser, the controller on a
simulated engine (one and three workers), and what the OpenAI-compatible engine sends
and reads (from a scripted server on loopback, `tests.stubs.Stub`). The fallback to AIMD:
test_admission_fallback."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from batchyard.engines.remote.concurrency import AdmissionController
from batchyard.engines.remote.openai_compat import OpenAICompatEngine
from batchyard.engines.remote.upstream_load import (
    UpstreamLoad,
    metrics_url_for,
    parse_load,
)
from batchyard.engines.slots import Priority, PrioritySlots
from batchyard.wire.messages import MessageCreateParams, MessageParam
from batchyard.wire.streaming import ContentBlockDelta, TextDelta
from tests.engine_sim import SimEngine, controlled, fixed, simulate
from tests.stubs import Stub
from tests.unit.test_admission_fallback import wait_for

VLLM = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 37.0
vllm:num_requests_running{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 40.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 3.0
vllm:num_requests_waiting{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 2.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.61
vllm:kv_cache_usage_perc{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.72
# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 120000.0
vllm:prefix_cache_queries_total{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 80000.0
# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 90000.0
vllm:prefix_cache_hits_total{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 60000.0
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="m"} 0.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="m"} 5.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="m"} 5.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="m"} 0.42
# HELP python_gc_objects_collected_total Objects collected during gc
# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{generation="0"} 9312.0
"""

VLLM_OLD = """\
vllm:num_requests_running{model_name="m"} 4.0
vllm:num_requests_waiting{model_name="m"} 0.0
vllm:gpu_cache_usage_perc{model_name="m"} 0.97
"""

SGLANG = """\
# HELP sglang:num_running_reqs The number of running requests.
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{model_name="qwen",tp_rank="0"} 12.0
# HELP sglang:num_queue_reqs The number of requests in the waiting queue.
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{model_name="qwen",tp_rank="0"} 7.0
# HELP sglang:token_usage The token usage.
# TYPE sglang:token_usage gauge
sglang:token_usage{model_name="qwen",tp_rank="0"} 0.45
sglang:cache_hit_rate{model_name="qwen",tp_rank="0"} 0.3
"""

LLAMA_SERVER = """\
# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 1024
# HELP llamacpp:kv_cache_usage_ratio KV-cache usage. 1 means 100 percent usage.
# TYPE llamacpp:kv_cache_usage_ratio gauge
llamacpp:kv_cache_usage_ratio 0.25
# HELP llamacpp:requests_processing Number of request processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 4
# HELP llamacpp:requests_deferred Number of request deferred.
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 9
"""


def test_parses_vllm_summed_over_engines() -> None:
    load = parse_load(VLLM, at=5.0)
    assert load is not None
    assert (load.running, load.waiting, load.kv_usage) == (77, 5, 0.72)  # the fullest KV
    assert (load.prefix_queries, load.prefix_hits) == (200000.0, 150000.0)
    assert load.prefix_hit_rate == 0.75 and load.at == 5.0


def test_parses_older_vllm_sglang_and_llama_server() -> None:
    old = parse_load(VLLM_OLD)
    assert old is not None and (old.running, old.waiting, old.kv_usage) == (4, 0, 0.97)
    assert old.prefix_hit_rate is None
    sglang = parse_load(SGLANG)
    assert sglang is not None and (sglang.running, sglang.waiting, sglang.kv_usage) == (12, 7, 0.45)
    llama = parse_load(LLAMA_SERVER)
    assert llama is not None and (llama.running, llama.waiting, llama.kv_usage) == (4, 9, 0.25)


def test_text_without_known_gauges_is_no_reading() -> None:
    assert parse_load("") is None
    assert (
        parse_load('# TYPE x gauge\nbatchyard_queue_depth 3\nnot a line\nfoo{a="}"} NaN\n') is None
    )
    assert parse_load("vllm:num_requests_waiting NaN\n") is None
    odd = parse_load('vllm:num_requests_running{model_name="a } b"} 2 1700000000000\n')
    assert odd is not None and odd.running == 2


def test_metrics_url_beside_the_v1_base() -> None:
    assert metrics_url_for("http://gpu-1:8000/v1") == "http://gpu-1:8000/metrics"
    assert metrics_url_for("http://gpu-1:8000/v1/") == "http://gpu-1:8000/metrics"
    assert metrics_url_for("http://proxy/vllm") == "http://proxy/vllm/metrics"


# --- the controller, on a simulated engine ------------------------------------------


def service(lo: float, hi: float) -> Callable[..., float]:
    return lambda rng: rng.uniform(lo, hi)


def test_one_controller_fills_the_engine_and_keeps_its_queue_short() -> None:
    engine = SimEngine(64, service(0.5, 1.5))
    result = simulate(engine, controlled(1), seconds=60, warmup=20)
    assert result.saturation >= 0.95
    assert result.waiting <= 2 * result.target  # the target: max(2, 64 / 8) = 8


@pytest.mark.parametrize(("seats", "lo", "hi"), [(64, 0.5, 1.5), (256, 5.0, 30.0)])
def test_three_controllers_share_one_engine_without_a_hand_split(
    seats: int, lo: float, hi: float
) -> None:
    """Three workers, each with the default maximum of 1024 and no --capacity, the
    second and third starting late: the engine stays full, its queue near the target,
    and each worker gets about a third."""
    clients = controlled(3)
    clients[1].starts_at, clients[2].starts_at = 20.0, 40.0
    result = simulate(SimEngine(seats, service(lo, hi)), clients, seconds=400, warmup=200)
    assert result.saturation >= 0.95
    assert result.waiting <= 2 * result.target
    assert all(abs(share - 1 / 3) < 0.07 for share in result.shares), result.shares


def test_a_fixed_capacity_floods_the_queue() -> None:
    """What the controller replaces: 3 x 64 against 64 seats queues 128 in the engine."""
    result = simulate(SimEngine(64, service(0.5, 1.5)), fixed(3, 64), seconds=30, warmup=10)
    assert result.waiting > 100


def test_queue_above_target_shrinks_by_our_share() -> None:
    slots = PrioritySlots(1024)
    controller = AdmissionController(slots, 1024)
    controller.slow_start = False
    slots.set_capacity(50)
    slots.in_use = 50
    # 100 running, 60 waiting (target 12.5): we hold 50 of the 160, keep 50 of 112.5 + a step
    capacity = controller.observe(UpstreamLoad(running=100, waiting=60))
    assert capacity < 50 and abs(capacity - (50 + 1.5625) * 112.5 / 160) < 1
    # the next reading, still draining (we hold more than our capacity), cuts no deeper
    assert controller.observe(UpstreamLoad(running=100, waiting=60)) == capacity
    assert controller.observe(UpstreamLoad(running=100, waiting=55)) == capacity


def test_grows_only_while_its_slots_are_full_and_never_past_the_maximum() -> None:
    slots = PrioritySlots(1)
    controller = AdmissionController(slots, 20, start=8)
    assert slots.capacity == 8
    slots.in_use = 3  # idle slots: nothing to gain
    assert controller.observe(UpstreamLoad(running=3, waiting=0)) == 8
    slots.in_use = 8
    assert controller.observe(UpstreamLoad(running=8, waiting=0)) == 16  # slow start
    slots.in_use = 16
    assert controller.observe(UpstreamLoad(running=16, waiting=0)) == 20  # the maximum


def test_slow_start_stops_doubling_at_its_limit() -> None:
    """Doubling from 32 against an engine with 32 seats would queue 32 for a whole
    wave: past the limit growth is the steady one (here (32 + 4) / 32 and a step)."""
    slots = PrioritySlots(1)
    controller = AdmissionController(slots, 1024, start=8)
    for capacity in (8, 16):
        slots.in_use = capacity
        assert controller.observe(UpstreamLoad(running=capacity, waiting=0)) == 2 * capacity
    slots.in_use = 32
    assert not controller.slow_start
    grown = controller.observe(UpstreamLoad(running=32, waiting=0))
    assert 32 < grown <= 40, grown


def test_a_full_kv_cache_ends_slow_start() -> None:
    slots = PrioritySlots(1)
    controller = AdmissionController(slots, 1024, start=8)
    slots.in_use = 8
    capacity = controller.observe(UpstreamLoad(running=8, waiting=0, kv_usage=0.97))
    assert not controller.slow_start and capacity < 16


# --- the OpenAI-compatible engine -----------------------------------------------------


def ask(text: str = "hi") -> MessageCreateParams:
    return MessageCreateParams(
        model="m", max_tokens=8, messages=[MessageParam(role="user", content=text)]
    )


@pytest.mark.anyio
async def test_priority_is_sent_only_when_configured() -> None:
    with Stub() as stub:
        plain = OpenAICompatEngine(f"{stub.url}/v1")
        await plain.create_message(ask(), priority=Priority.INTERACTIVE)
        await plain.create_message(ask(), priority=Priority.BATCH)
        assert len(stub.received) == 2
        assert all("priority" not in body for body in stub.received)
        await plain.aclose()

        stub.received.clear()
        engine = OpenAICompatEngine(f"{stub.url}/v1", send_priority=True, batch_priority=7)
        await engine.create_message(ask(), priority=Priority.INTERACTIVE)
        await engine.create_message(ask(), priority=Priority.BATCH)
        events = [e async for e in engine.stream_message(ask(), priority=Priority.INTERACTIVE)]
        assert events
        assert [body["priority"] for body in stub.received] == [0, 7, 0]
        await engine.aclose()


@pytest.mark.anyio
async def test_a_first_come_first_served_server_refusing_priority_stops_getting_it() -> None:
    with Stub(fcfs=True) as stub:
        engine = OpenAICompatEngine(f"{stub.url}/v1", send_priority=True)
        message = await engine.create_message(ask("one"), priority=Priority.BATCH)
        assert message.content[0].text == "stub reply: one"  # type: ignore[union-attr]
        await engine.create_message(ask(), priority=Priority.BATCH)
        events = [e async for e in engine.stream_message(ask(), priority=Priority.BATCH)]
        assert events
        assert [body.get("priority") for body in stub.received] == [10, None, None, None]
        await engine.aclose()


@pytest.mark.anyio
async def test_a_stream_refused_for_an_optional_key_is_asked_again_without_it() -> None:
    with Stub(fcfs=True) as stub:
        engine = OpenAICompatEngine(f"{stub.url}/v1", send_priority=True)
        events = [e async for e in engine.stream_message(ask("two"), priority=Priority.BATCH)]
        assert [body.get("priority") for body in stub.received] == [10, None]
        text = "".join(
            e.delta.text
            for e in events
            if isinstance(e, ContentBlockDelta) and isinstance(e.delta, TextDelta)
        )
        assert text == "stub reply: two"
        await engine.aclose()


@pytest.mark.anyio
async def test_the_engine_reads_its_servers_load_and_follows_it() -> None:
    metrics = VLLM.replace("} 3.0", "} 300.0")  # a long queue: shrink to the minimum
    with Stub(metrics=metrics) as stub:
        engine = OpenAICompatEngine(
            f"{stub.url}/v1", capacity=1024, admission="metrics", metrics_interval=0.01
        )
        assert engine.slots.capacity == 8 and engine.upstream_load is None
        engine.slots.in_use = 8  # as if the worker held all its slots
        await engine.create_message(ask())
        await wait_for(lambda: engine.slots.capacity < 8)
        load = engine.upstream_load
        assert load is not None and (load.running, load.waiting, load.kv_usage) == (77, 302, 0.72)
        assert load.prefix_hit_rate == 0.75
        assert engine.admission.driven_by == "metrics"
        await engine.aclose()
        assert engine.admission.probe is not None and engine.admission.probe._task is None


@pytest.mark.anyio
async def test_no_probe_starts_after_the_engine_is_closed() -> None:
    with Stub(metrics=VLLM) as stub:
        engine = OpenAICompatEngine(f"{stub.url}/v1", admission="metrics", metrics_interval=0.01)
        await engine.create_message(ask())
        probe = engine.admission.probe
        assert probe is not None and probe._task is not None
        await engine.aclose()
        engine.admission.start()  # a request still on its way in after the close
        probe.start()
        assert probe._task is None
