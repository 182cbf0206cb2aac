"""The parsed options of `batchyard serve | worker | doctor` as the server's Settings."""

from __future__ import annotations

import argparse

import msgspec

from batchyard.cli.options import env
from batchyard.config import (
    DAY,
    DEFAULT_FILE_QUOTA_BYTES,
    LOCAL_MODEL,
    BodyLimits,
    Settings,
    WorkerSettings,
)
from batchyard.engines import config as engine_config
from batchyard.engines.config import EngineConfig
from batchyard.store.records import RateLimits

_DEFAULT_MODELS = {
    "local": [],
    # a listed name first, so an SDK user finds one in /v1/models; the globs route the rest
    "fake": ["fake-model", "claude-*", "fake-*"],
    "anthropic": ["claude-*"],
    "openai": [],
}


def engines_of(args: argparse.Namespace) -> list[EngineConfig]:
    """The engines the options name: the routing table of --config, else one engine."""
    if args.config:
        try:
            return engine_config.load(args.config)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"batchyard: bad --config: {exc}") from None
    names = args.models or [m.strip() for m in env("MODELS", "").split(",") if m.strip()]
    names = names or _DEFAULT_MODELS[args.engine]
    if args.engine == "local":
        local = msgspec.structs.replace(
            LOCAL_MODEL, max_input_tokens=args.context_tokens, max_tokens=args.context_tokens
        )
        models = [local, *engine_config.models_from_flags(names)]
        return [
            EngineConfig(
                kind="local",
                models=models,
                capacity=args.capacity,
                context_tokens=args.context_tokens,
                prefix_cache_mb=args.prefix_cache_mb,
                deterministic=args.deterministic,
                flash_attention=args.flash_attention,
                kv_budget_mb=args.kv_budget,
                model_path=args.model_path,
            )
        ]
    if not names:
        raise SystemExit(f"batchyard: --engine {args.engine} needs at least one --model")
    if args.engine == "openai" and not args.upstream_url:
        raise SystemExit("batchyard: --engine openai needs --upstream-url")
    return [
        EngineConfig(
            kind=args.engine,
            models=engine_config.models_from_flags(names),
            capacity=args.capacity or (args.fake_capacity if args.engine == "fake" else None),
            base_url=args.upstream_url[0] if args.upstream_url else None,
            base_urls=args.upstream_url
            if args.upstream_url and len(args.upstream_url) > 1
            else None,
            api_key=args.upstream_key,
            timeout_seconds=args.upstream_timeout,
            admission=args.admission,
            metrics_url=_one_or_list(args.upstream_metrics_url),
            metrics_interval_seconds=args.upstream_metrics_interval,
            priority=args.engine_priority,
            batch_priority=args.batch_priority,
            latency_ms=args.fake_latency_ms,
            error_rate=args.fake_error_rate,
            hang_rate=args.fake_hang_rate,
            seed=args.fake_seed,
        )
    ]


def _one_or_list(values: list[str] | None) -> str | list[str] | None:
    """A repeated option's values as the routing table takes them."""
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def settings_of(args: argparse.Namespace, *, run_worker: bool) -> Settings:
    """The Settings the options in `args` give (`run_worker`: also run a worker)."""
    return Settings(
        database=args.database,
        host=getattr(args, "host", "127.0.0.1"),
        port=getattr(args, "port", 8000),
        public_base_url=getattr(args, "public_base_url", None),
        path_prefix=getattr(args, "path_prefix", None),
        batch_expiry_seconds=getattr(args, "batch_expiry", DAY),
        results_retention_seconds=getattr(args, "results_retention", 29 * DAY),
        sqlite_synchronous=args.sqlite_synchronous,
        run_worker=run_worker,
        engines=engines_of(args),
        auth=not getattr(args, "no_auth", False),
        admin_key=getattr(args, "admin_key", None),
        webhook_hosts=args.webhook_hosts
        or [h.strip() for h in env("WEBHOOK_HOSTS", "").split(",") if h.strip()],
        webhook_secret=args.webhook_secret,
        max_file_bytes=getattr(args, "max_file_bytes", None),
        file_quota_bytes=getattr(args, "file_quota_bytes", DEFAULT_FILE_QUOTA_BYTES) or None,
        bodies=BodyLimits(
            timeout=getattr(args, "body_timeout", BodyLimits().timeout),
            max_reads=getattr(args, "max_body_reads", BodyLimits().max_reads),
            max_bytes=getattr(args, "max_body_memory", BodyLimits().max_bytes),
        ),
        rate_limits=RateLimits(
            getattr(args, "requests_per_minute", None),
            getattr(args, "batch_requests_per_minute", None),
            getattr(args, "batch_queued_requests", None),
        ),
        worker=WorkerSettings(
            lease_seconds=args.lease,
            max_attempts=args.max_attempts,
            engine_timeout_seconds=args.engine_timeout,
            retry_base_seconds=args.retry_base,
            concurrency=args.concurrency,
            prefix_run=args.prefix_run,
            housekeeping_seconds=args.housekeeping_interval,
            poll_seconds=args.poll_interval,
            status_seconds=args.status_interval,
            shutdown_grace_seconds=args.shutdown_grace,
        ),
    )
