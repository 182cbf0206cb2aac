"""Build the routing table from settings."""

from __future__ import annotations

from batchyard.config import EngineSettings
from batchyard.engines.fake import FakeEngine
from batchyard.engines.router import EngineRouter, Route


def build_router(settings: EngineSettings) -> EngineRouter:
    if settings.engine != "fake":
        raise ValueError(f"unknown engine {settings.engine!r} (available: fake)")
    engine = FakeEngine(
        latency_ms=settings.fake_latency_ms,
        error_rate=settings.fake_error_rate,
        capacity=settings.fake_capacity,
        seed=settings.fake_seed,
    )
    return EngineRouter([Route(pattern, engine) for pattern in settings.models])
