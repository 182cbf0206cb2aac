"""A fleet's load read at each replica: several metrics URLs, or a `dns+` URL whose name
resolves to every replica (re-resolved), summed; a replica that does not answer counts as
none. Real metrics servers on loopback (`tests.stubs.Stub`)."""

from __future__ import annotations

import argparse
from pathlib import Path

import httpx
import pytest

from batchyard.cli.options import add_store_and_engine
from batchyard.cli.settings import engines_of
from batchyard.engines import config as engine_config
from batchyard.engines.build import build_engine
from batchyard.engines.remote.openai_compat import OpenAICompatEngine
from batchyard.engines.remote.upstream_load import LoadProbe, UpstreamLoad, combine
from tests.serverproc import free_port
from tests.stubs import Stub


def gauges(running: int, waiting: int, kv: float, hits: float, queries: float) -> str:
    return (
        f'vllm:num_requests_running{{engine="0",model_name="m"}} {running}.0\n'
        f'vllm:num_requests_waiting{{engine="0",model_name="m"}} {waiting}.0\n'
        f'vllm:kv_cache_usage_perc{{engine="0",model_name="m"}} {kv}\n'
        f'vllm:prefix_cache_queries_total{{engine="0",model_name="m"}} {queries}\n'
        f'vllm:prefix_cache_hits_total{{engine="0",model_name="m"}} {hits}\n'
    )


def test_replicas_readings_add_up_and_the_fullest_kv_counts() -> None:
    a = UpstreamLoad(running=30, waiting=2, kv_usage=0.4, prefix_queries=100, prefix_hits=50, at=1)
    b = UpstreamLoad(running=10, waiting=0, kv_usage=0.9, prefix_queries=None, at=2)
    both = combine([a, b])
    assert (both.running, both.waiting, both.kv_usage, both.at) == (40, 2, 0.9, 2)
    assert (both.prefix_queries, both.prefix_hits) == (100, 50)


@pytest.mark.anyio
async def test_a_fleets_replicas_are_read_and_summed_and_a_dead_one_counts_as_none() -> None:
    with (
        Stub(metrics=gauges(30, 4, 0.5, 60, 100)) as one,
        Stub(metrics=gauges(12, 1, 0.8, 10, 100)) as two,
    ):
        urls = [f"{one.url}/metrics", f"{two.url}/metrics"]
        async with httpx.AsyncClient() as client:
            probe = LoadProbe(client, urls, lambda load: None)
            load = await probe.read()
            assert load is not None
            assert (load.running, load.waiting, load.kv_usage) == (42, 5, 0.8)
            assert load.prefix_hit_rate == 0.35
            assert probe.readings[urls[0]] is not None and probe.readings[urls[1]] is not None

            dead = f"http://127.0.0.1:{free_port()}/metrics"
            probe = LoadProbe(client, [urls[0], dead], lambda load: None)
            load = await probe.read()
            assert load is not None and (load.running, load.waiting) == (30, 4)
            assert probe.readings[dead] is None

            probe = LoadProbe(client, [dead, dead.replace("/metrics", "/other")], lambda load: None)
            assert await probe.read() is None
            assert probe.failure is not None and "cannot reach it" in probe.failure
            assert dead in probe.failure


@pytest.mark.anyio
async def test_a_dns_name_is_every_address_it_resolves_to_and_is_resolved_again() -> None:
    with Stub(metrics=gauges(7, 0, 0.1, 0, 0)) as one, Stub(metrics=gauges(5, 3, 0.2, 0, 0)) as two:
        # Both stubs listen on 127.0.0.1; a fleet's replicas share a port, on addresses
        # of their own: here the resolver names the replica by its whole address.
        answers = {"fleet": ["127.0.0.1"]}

        async def resolve(host: str) -> list[str]:
            return answers[host]

        async with httpx.AsyncClient() as client:
            probe = LoadProbe(
                client,
                f"dns+http://fleet:{one.port}/metrics",
                lambda load: None,
                resolve=resolve,
                resolve_interval=0.0,
            )
            load = await probe.read()
            assert load is not None and load.running == 7
            assert list(probe.readings) == [f"http://127.0.0.1:{one.port}/metrics"]
            answers["fleet"] = []  # every replica gone from the Service
            assert await probe.read() is None
            assert probe.failure == f"dns+http://fleet:{one.port}/metrics resolves to no address"
            answers["fleet"] = ["127.0.0.1"]
            assert (await probe.read()) is not None

            # the real resolver: localhost is (at least) 127.0.0.1
            real = LoadProbe(client, f"dns+http://localhost:{two.port}/metrics", lambda load: None)
            load = await real.read()
            assert load is not None and (load.running, load.waiting) == (5, 3)
            assert f"http://127.0.0.1:{two.port}/metrics" in real.readings


def test_metrics_urls_come_from_repeated_flags_the_environment_and_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def configs(*flags: str) -> list[engine_config.EngineConfig]:
        p = argparse.ArgumentParser()
        add_store_and_engine(p)
        args = p.parse_args(
            [
                "--engine",
                "openai",
                "--upstream-url",
                "http://router:8000/v1",
                "--model",
                "m",
                *flags,
            ]
        )
        return engines_of(args)

    assert configs()[0].metrics_url is None
    assert (
        configs("--upstream-metrics-url", "http://a/metrics")[0].metrics_url == "http://a/metrics"
    )
    two = configs(
        "--upstream-metrics-url", "http://a/metrics", "--upstream-metrics-url", "http://b/metrics"
    )
    assert two[0].metrics_url == ["http://a/metrics", "http://b/metrics"]
    engine = build_engine(two[0], tmp_path)
    assert isinstance(engine, OpenAICompatEngine)
    assert engine.admission.probe is not None
    assert engine.admission.probe.urls == ("http://a/metrics", "http://b/metrics")

    monkeypatch.setenv(
        "BATCHYARD_UPSTREAM_METRICS_URL", "http://a/metrics,dns+http://fleet:8000/metrics"
    )
    assert configs()[0].metrics_url == ["http://a/metrics", "dns+http://fleet:8000/metrics"]

    path = tmp_path / "engines.toml"
    path.write_text(
        "[[engines]]\nkind = 'openai'\nbase_url = 'http://router:8000/v1'\n"
        "metrics_url = ['http://gpu-0:8000/metrics', 'http://gpu-1:8000/metrics']\n"
        "models = [{ id = 'm' }]\n"
    )
    loaded = engine_config.load(path)[0]
    assert loaded.metrics_url == ["http://gpu-0:8000/metrics", "http://gpu-1:8000/metrics"]
