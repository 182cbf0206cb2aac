"""Build the routing table (engines and their models) from configuration."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec

from batchyard.engines.base import Engine
from batchyard.engines.config import SHIPPED_SAMPLING, AdmissionMode, EngineConfig, ModelConfig
from batchyard.engines.router import EngineRouter, Route

ADAPTIVE_MAXIMUM = 1024
"""An openai engine's most requests at once when it adapts and no capacity is given."""


def admission_mode(config: EngineConfig) -> AdmissionMode:
    """A remote engine's admission: as configured, else metrics (openai) or aimd."""
    if config.admission is not None:
        return config.admission
    if not config.adaptive_concurrency:
        return "fixed"
    return "metrics" if config.kind == "openai" else "aimd"


def build_engine(config: EngineConfig, cache_dir: Path) -> Engine:
    if config.kind == "fake":
        from batchyard.engines.fake.engine import FakeEngine

        return FakeEngine(
            latency_ms=config.latency_ms,
            error_rate=config.error_rate,
            hang_rate=config.hang_rate,
            capacity=config.capacity or 1024,
            seed=config.seed,
            name=config.name or "fake",
        )
    if config.kind == "local":
        from batchyard.engines.local.engine import LocalEngine

        return LocalEngine(
            cache_dir=cache_dir,
            model_path=config.model_path,
            capacity=config.capacity or 32,
            context_tokens=config.context_tokens,
            prefix_cache_mb=config.prefix_cache_mb,
            deterministic=config.deterministic,
            flash_attention=config.flash_attention,
            kv_budget_mb=config.kv_budget_mb,
            threads=config.threads,
            name=config.name or "local",
        )
    api_key = config.api_key or (os.environ.get(config.api_key_env) if config.api_key_env else None)
    if config.kind == "openai":
        from batchyard.engines.remote.openai_compat import OpenAICompatEngine
        from batchyard.engines.remote.replicas import ReplicaSet

        urls = config.base_urls or ([config.base_url] if config.base_url else [])
        if not urls:
            raise ValueError("an openai engine needs base_url (the server's /v1 URL)")
        mode = admission_mode(config)
        options: dict[str, Any] = dict(
            api_key=api_key,
            capacity=config.capacity or (64 if mode == "fixed" else ADAPTIVE_MAXIMUM),
            timeout=config.timeout_seconds,
            name=config.name or "openai",
            admission=mode,
            metrics_interval=config.metrics_interval_seconds,
            target_queue=config.target_queue,
            send_priority=config.priority,
            batch_priority=config.batch_priority,
        )
        if len(urls) > 1:
            if config.metrics_url:
                raise ValueError(
                    "base_urls: each replica's metrics are read beside it; metrics_url is"
                    " for one server or a router's fleet"
                )
            return ReplicaSet(urls, **options)
        return OpenAICompatEngine(urls[0], metrics_url=config.metrics_url, **options)
    if config.kind == "anthropic":
        from batchyard.engines.remote.anthropic import AnthropicEngine

        return AnthropicEngine(
            config.base_url or "https://api.anthropic.com",
            api_key=api_key or os.environ.get("ANTHROPIC_API_KEY"),
            capacity=config.capacity or 32,
            timeout=config.timeout_seconds,
            name=config.name or "anthropic",
            admission=admission_mode(config),
        )
    raise ValueError(f"engine kind {config.kind!r} is not available")


def _with_sampling(config: EngineConfig, model: ModelConfig) -> ModelConfig:
    """The embedded engine's shipped model gets its model card's sampling unless the
    configuration gives its own."""
    if config.kind == "local" and config.model_path is None and model.sampling is None:
        return msgspec.structs.replace(model, sampling=SHIPPED_SAMPLING)
    return model


def build_router(configs: list[EngineConfig], cache_dir: Path) -> EngineRouter:
    """`cache_dir` keeps derived files such as the local model's F16 weights."""
    if not configs:
        raise ValueError("no engine configured")
    routes: list[Route] = []
    for config in configs:
        engine = build_engine(config, cache_dir)
        routes.extend(Route(_with_sampling(config, model), engine) for model in config.models)
    return EngineRouter(routes)
