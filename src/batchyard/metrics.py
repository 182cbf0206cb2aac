"""Prometheus metrics of one process (API and/or worker), served at `GET /metrics`.

Counters and histograms are kept by the code that sees the event (the request
middleware, the worker, the messages routes); the store-wide gauges (queue depth,
open batches) are read from the store at scrape time, so every API replica
reports the same queue.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from batchyard.store.records import BatchRecord, TokenUsage

if TYPE_CHECKING:
    from batchyard.engines.base import Engine
    from batchyard.engines.remote.upstream_load import UpstreamLoad

_BATCH_BUCKETS = (1, 5, 15, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self, *, store_gauges: bool = True) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "batchyard_http_requests",
            "HTTP requests answered, by route and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "batchyard_http_request_duration_seconds",
            "Time to the response's first byte, by route",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.outcomes = Counter(
            "batchyard_batch_requests",
            "Batch requests a worker finished (succeeded, errored) or sent back (retried)",
            ["outcome"],
            registry=r,
        )
        self.engine_latency = Histogram(
            "batchyard_engine_call_duration_seconds",
            "Engine calls from the worker, by engine",
            ["engine"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.engine_errors = Counter(
            "batchyard_engine_errors",
            "Engine call failures, by engine and error type",
            ["engine", "type"],
            registry=r,
        )
        self.tokens = Counter(
            "batchyard_tokens",
            "Tokens processed, by direction (input: the prompt's uncached part, output,"
            " cache_read, cache_creation) and tier (batch, standard)",
            ["direction", "tier"],
            registry=r,
        )
        self.in_flight = Gauge(
            "batchyard_worker_in_flight", "Requests this process's worker holds", registry=r
        )
        self.batch_duration = Histogram(
            "batchyard_batch_duration_seconds",
            "Batches from creation to their end, by how they ended (completed, canceled,"
            " expired); observed by the process that ended them",
            ["outcome"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        # Store-wide, read at scrape time by the API's /metrics; a standalone
        # worker's endpoint leaves them out (every API replica reports them).
        self.queue_depth = Gauge(
            "batchyard_queue_depth",
            "Unfinished batch requests in the store",
            registry=r if store_gauges else None,
        )
        self.open_batches = Gauge(
            "batchyard_open_batches",
            "Batches not yet ended, in the store",
            registry=r if store_gauges else None,
        )
        self.batches_at_risk = Gauge(
            "batchyard_batches_at_risk",
            "Open batches not expected to finish before they expire, at their measured"
            " throughput (their ETA's at_risk)",
            registry=r if store_gauges else None,
        )

    def count_tokens(self, tier: str, usage: TokenUsage) -> None:
        self.tokens.labels("input", tier).inc(usage.input_tokens)
        self.tokens.labels("output", tier).inc(usage.output_tokens)
        self.tokens.labels("cache_read", tier).inc(usage.cache_read_input_tokens)
        created = usage.cache_creation_5m_input_tokens + usage.cache_creation_1h_input_tokens
        self.tokens.labels("cache_creation", tier).inc(created)

    def observe_batch(self, batch: BatchRecord) -> None:
        if batch.ended_at is not None:
            self.batch_duration.labels(batch.outcome).observe(batch.ended_at - batch.created_at)

    def watch_engines(self, engines: Iterable[Engine]) -> None:
        """Report these engines' concurrency (and their servers' load, where read) at
        every scrape."""
        self.registry.register(_EngineCollector(list(engines)))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Serve these metrics at http://host:port/metrics from a thread (a standalone
        worker has no HTTP server of its own)."""
        start_http_server(port, addr=host, registry=self.registry)


_REPLICA_GAUGES = {
    "up": "1 if a metrics endpoint of the engine (a fleet's replica) answered its last"
    " reading, else 0",
    "running": "Requests one replica of the engine runs, at its last metrics reading",
    "waiting": "Requests queued inside one replica of the engine, at its last reading",
    "kv_cache_usage": "Share of one replica's KV cache in use, at its last metrics reading",
    "in_service": "1 if a replica of the engine (base URL; no router) takes calls now, 0 if"
    " it was taken out",
}
"""The per-replica gauges of an engine read at several metrics endpoints (a fleet)."""


class _EngineCollector(Collector):
    """Each engine's slots (capacity now, in use, waiting) and its server's last load
    reading (`engines/remote/upstream_load.py`), read at scrape time."""

    def __init__(self, engines: list[Engine]) -> None:
        self.engines = engines

    def collect(self) -> Iterator[Metric]:
        families = {
            "capacity": GaugeMetricFamily(
                "batchyard_engine_capacity",
                "Requests the engine is sent at once now (its admission's level)",
                labels=["engine"],
            ),
            "in_use": GaugeMetricFamily(
                "batchyard_engine_in_use", "Engine slots held by calls now", labels=["engine"]
            ),
            "waiting": GaugeMetricFamily(
                "batchyard_engine_waiting", "Calls waiting for an engine slot", labels=["engine"]
            ),
            "running": GaugeMetricFamily(
                "batchyard_upstream_running",
                "Requests the engine's server runs (all clients), at its last metrics reading",
                labels=["engine"],
            ),
            "queued": GaugeMetricFamily(
                "batchyard_upstream_waiting",
                "Requests queued inside the engine's server, at its last metrics reading",
                labels=["engine"],
            ),
            "kv": GaugeMetricFamily(
                "batchyard_upstream_kv_cache_usage",
                "Share of the engine's server KV cache in use, at its last metrics reading",
                labels=["engine"],
            ),
        }
        for key, help_text in _REPLICA_GAUGES.items():
            families[f"replica_{key}"] = GaugeMetricFamily(
                f"batchyard_upstream_replica_{key}", help_text, labels=["engine", "replica"]
            )
        for engine in self.engines:
            serving: Callable[[], dict[str, bool]] | None = getattr(engine, "in_service", None)
            for replica, up in (serving() if serving is not None else {}).items():
                families["replica_in_service"].add_metric([engine.name, replica], int(up))
            replicas: dict[str, UpstreamLoad | None] = getattr(engine, "upstream_replicas", {})
            for replica, reading in replicas.items():
                labels = [engine.name, replica]
                families["replica_up"].add_metric(labels, 0 if reading is None else 1)
                if reading is not None:
                    families["replica_running"].add_metric(labels, reading.running)
                    families["replica_waiting"].add_metric(labels, reading.waiting)
                    if reading.kv_usage is not None:
                        families["replica_kv_cache_usage"].add_metric(labels, reading.kv_usage)
        for engine in self.engines:
            slots = engine.slots
            families["capacity"].add_metric([engine.name], slots.capacity)
            families["in_use"].add_metric([engine.name], slots.in_use)
            families["waiting"].add_metric([engine.name], slots.waiting)
            load = getattr(engine, "upstream_load", None)
            if load is not None:
                families["running"].add_metric([engine.name], load.running)
                families["queued"].add_metric([engine.name], load.waiting)
                if load.kv_usage is not None:
                    families["kv"].add_metric([engine.name], load.kv_usage)
        yield from families.values()
