"""Build the routing table (engines and their models) from configuration."""

from __future__ import annotations

from batchyard.engines.base import Engine
from batchyard.engines.config import EngineConfig
from batchyard.engines.router import EngineRouter, Route


def build_engine(config: EngineConfig) -> Engine:
    if config.kind == "fake":
        from batchyard.engines.fake import FakeEngine

        return FakeEngine(
            latency_ms=config.latency_ms,
            error_rate=config.error_rate,
            capacity=config.capacity or 1024,
            seed=config.seed,
            name=config.name or "fake",
        )
    raise ValueError(f"engine kind {config.kind!r} is not available")


def build_router(configs: list[EngineConfig]) -> EngineRouter:
    if not configs:
        raise ValueError("no engine configured")
    routes: list[Route] = []
    for config in configs:
        engine = build_engine(config)
        routes.extend(Route(model, engine) for model in config.models)
    return EngineRouter(routes)
