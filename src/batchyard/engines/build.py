"""Build the routing table (engines and their models) from configuration."""

from __future__ import annotations

import os
from pathlib import Path

from batchyard.engines.base import Engine
from batchyard.engines.config import EngineConfig
from batchyard.engines.router import EngineRouter, Route


def build_engine(config: EngineConfig, cache_dir: Path) -> Engine:
    if config.kind == "fake":
        from batchyard.engines.fake import FakeEngine

        return FakeEngine(
            latency_ms=config.latency_ms,
            error_rate=config.error_rate,
            hang_rate=config.hang_rate,
            capacity=config.capacity or 1024,
            seed=config.seed,
            name=config.name or "fake",
        )
    if config.kind == "local":
        from batchyard.engines.local import LocalEngine

        return LocalEngine(
            cache_dir=cache_dir,
            model_path=config.model_path,
            capacity=config.capacity or 32,
            context_tokens=config.context_tokens,
            prefix_cache_mb=config.prefix_cache_mb,
            deterministic=config.deterministic,
            flash_attention=config.flash_attention,
            threads=config.threads,
            name=config.name or "local",
        )
    api_key = config.api_key or (os.environ.get(config.api_key_env) if config.api_key_env else None)
    if config.kind == "openai":
        from batchyard.engines.openai_compat import OpenAICompatEngine

        if not config.base_url:
            raise ValueError("an openai engine needs base_url (the server's /v1 URL)")
        return OpenAICompatEngine(
            config.base_url,
            api_key=api_key,
            capacity=config.capacity or 64,
            timeout=config.timeout_seconds,
            adaptive=config.adaptive_concurrency,
            name=config.name or "openai",
        )
    if config.kind == "anthropic":
        from batchyard.engines.anthropic_upstream import AnthropicEngine

        return AnthropicEngine(
            config.base_url or "https://api.anthropic.com",
            api_key=api_key or os.environ.get("ANTHROPIC_API_KEY"),
            capacity=config.capacity or 32,
            timeout=config.timeout_seconds,
            adaptive=config.adaptive_concurrency,
            name=config.name or "anthropic",
        )
    raise ValueError(f"engine kind {config.kind!r} is not available")


def build_router(configs: list[EngineConfig], cache_dir: Path) -> EngineRouter:
    """`cache_dir` keeps derived files such as the local model's F16 weights."""
    if not configs:
        raise ValueError("no engine configured")
    routes: list[Route] = []
    for config in configs:
        engine = build_engine(config, cache_dir)
        routes.extend(Route(model, engine) for model in config.models)
    return EngineRouter(routes)
