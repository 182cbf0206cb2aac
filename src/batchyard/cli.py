"""`batchyard serve | worker`: every option also reads a `BATCHYARD_*` environment variable."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from batchyard import __version__, cli_client, cli_keys, logs
from batchyard.config import DAY, LOCAL_MODEL, Settings, WorkerSettings, default_data_dir
from batchyard.engines import config as engine_config
from batchyard.engines.config import EngineConfig
from batchyard.store.records import RateLimits


def _env_flag(name: str, default: bool) -> bool:
    """A yes/no setting from BATCHYARD_{name}: 0, false or no turn it off."""
    return bool(_env(name, default, lambda raw: raw.lower() not in ("0", "false", "no")))


def _env(name: str, default: Any, cast: Callable[[str], Any] = str) -> Any:
    raw = os.environ.get(f"BATCHYARD_{name}")
    if raw is None or raw == "":
        return default
    try:
        return cast(raw)
    except ValueError:
        raise SystemExit(f"BATCHYARD_{name}={raw!r} is not a valid value") from None


def _duration(text: str) -> float:
    """`90`, `90s`, `15m`, `24h`, `29d` → seconds."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": DAY}
    text = text.strip()
    if text and text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)


def _add_database(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--database",
        default=_env("DATABASE", str(default_data_dir() / "batchyard.db")),
        help="a SQLite file path, or postgresql://user@host/db for the shared store of"
        " several API and worker processes (env BATCHYARD_DATABASE; default: %(default)s)",
    )


def _add_store_and_engine(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("store")
    _add_database(g)  # type: ignore[arg-type]
    g.add_argument(
        "--sqlite-synchronous",
        choices=["FULL", "NORMAL"],
        default=_env("SQLITE_SYNCHRONOUS", "NORMAL"),
        help="fsync of the worker's commits: FULL on every commit; NORMAL (default) at"
        " checkpoints, so a power cut may make the last finished requests run again."
        " Creating, canceling and deleting batches is always fsynced.",
    )
    e = p.add_argument_group(
        "engine", "one engine from flags, or a routing table of several with --config"
    )
    e.add_argument(
        "--config",
        default=_env("CONFIG", None),
        help="TOML routing table: engines, their models and options (overrides the flags below)",
    )
    e.add_argument(
        "--engine",
        choices=["local", "fake", "openai", "anthropic"],
        default=_env("ENGINE", "local"),
        help="local: the embedded SmolLM2 model on llama.cpp (default); fake: deterministic"
        " answers for tests and load; openai: any /v1/chat/completions server; anthropic:"
        " any Messages API",
    )
    e.add_argument(
        "--model",
        dest="models",
        action="append",
        help="model the engine serves: NAME, a glob, or NAME=UPSTREAM_NAME; repeatable"
        " (env BATCHYARD_MODELS, comma-separated)",
    )
    e.add_argument(
        "--upstream-url",
        default=_env("UPSTREAM_URL", None),
        help="openai: the server's /v1 base URL; anthropic: the API's base URL",
    )
    e.add_argument(
        "--upstream-key",
        default=_env("UPSTREAM_KEY", None),
        help="API key for the upstream (env BATCHYARD_UPSTREAM_KEY)",
    )
    e.add_argument(
        "--upstream-timeout",
        type=_duration,
        default=_env("UPSTREAM_TIMEOUT", 600.0, _duration),
        help="how long one upstream call may take before it is retried (default 600s)",
    )
    e.add_argument(
        "--capacity",
        type=int,
        default=_env("CAPACITY", None, int),
        help="concurrent requests the engine takes",
    )
    e.add_argument(
        "--context-tokens",
        type=int,
        default=_env("CONTEXT_TOKENS", 2048, int),
        help="local: context window per sequence (default 2048)",
    )
    e.add_argument(
        "--prefix-cache-mb",
        type=int,
        default=_env("PREFIX_CACHE_MB", 256, int),
        help="local: memory for the KV of recent prompt prefixes, so prompts that start"
        " alike prefill only what differs (default 256; 0 turns it off)",
    )
    e.add_argument(
        "--deterministic",
        action=argparse.BooleanOptionalAction,
        default=_env_flag("DETERMINISTIC", True),
        help="local: temperature 0 gives one answer whatever shares the decode or the"
        " cache (default); --no-deterministic turns on flash attention in full (its"
        " tiled loop for long prompts): faster, but an answer may then change with load",
    )
    e.add_argument(
        "--flash-attention",
        action=argparse.BooleanOptionalAction,
        default=_env_flag("FLASH_ATTENTION", False),
        help="local: llama.cpp's flash attention, still deterministic (prompts prefill in"
        " pieces under 64 tokens): decode ~10%% faster, prefill slower (default off)",
    )
    e.add_argument(
        "--model-path",
        default=_env("MODEL_PATH", None),
        help="local: a GGUF file to serve instead of the shipped SmolLM2",
    )
    e.add_argument("--fake-latency-ms", type=float, default=_env("FAKE_LATENCY_MS", 0.0, float))
    e.add_argument(
        "--fake-error-rate",
        type=float,
        default=_env("FAKE_ERROR_RATE", 0.0, float),
        help="share of calls that fail with a retryable error (0..1)",
    )
    e.add_argument(
        "--fake-hang-rate",
        type=float,
        default=_env("FAKE_HANG_RATE", 0.0, float),
        help="share of calls that never answer (0..1); see --engine-timeout",
    )
    e.add_argument("--fake-seed", type=int, default=_env("FAKE_SEED", None, int))
    e.add_argument(
        "--fake-capacity",
        type=int,
        default=_env("FAKE_CAPACITY", 1024, int),
        help="concurrent requests the fake engine accepts",
    )
    w = p.add_argument_group("worker")
    w.add_argument(
        "--lease",
        type=_duration,
        default=_env("LEASE", 60.0, _duration),
        help="claim lease; a dead worker's requests run again after it (default 60s)",
    )
    w.add_argument("--max-attempts", type=int, default=_env("MAX_ATTEMPTS", 5, int))
    w.add_argument(
        "--engine-timeout",
        type=_duration,
        default=_env("ENGINE_TIMEOUT", 600.0, _duration),
        help="an engine call running longer is cancelled and retried (default 600s)",
    )
    w.add_argument("--retry-base", type=_duration, default=_env("RETRY_BASE", 1.0, _duration))
    w.add_argument(
        "--concurrency",
        type=int,
        default=_env("CONCURRENCY", None, int),
        help="most requests one worker holds (default: engines' capacity)",
    )
    w.add_argument(
        "--housekeeping-interval",
        type=_duration,
        default=_env("HOUSEKEEPING_INTERVAL", 5.0, _duration),
    )
    w.add_argument("--poll-interval", type=_duration, default=_env("POLL_INTERVAL", 1.0, _duration))
    w.add_argument(
        "--status-interval",
        type=_duration,
        default=_env("STATUS_INTERVAL", 5.0, _duration),
        help="how often a worker reports itself to the store for the dashboard (default 5s)",
    )
    w.add_argument(
        "--webhook-host",
        dest="webhook_hosts",
        action="append",
        default=None,
        help="a host batches' webhook_url may name; repeatable (env BATCHYARD_WEBHOOK_HOSTS,"
        " comma-separated; none: webhooks are refused)",
    )
    w.add_argument(
        "--webhook-secret",
        default=_env("WEBHOOK_SECRET", None),
        help="HMAC-SHA256 key that signs webhook events (env BATCHYARD_WEBHOOK_SECRET)",
    )
    w.add_argument(
        "--shutdown-grace",
        type=_duration,
        default=_env("SHUTDOWN_GRACE", 10.0, _duration),
        help="on SIGTERM, in-flight requests get this long to finish (default 10s)",
    )


_DEFAULT_MODELS = {
    "local": [],
    # a listed name first, so an SDK user finds one in /v1/models; the globs route the rest
    "fake": ["fake-model", "claude-*", "fake-*"],
    "anthropic": ["claude-*"],
    "openai": [],
}


def _engines(args: argparse.Namespace) -> list[EngineConfig]:
    if args.config:
        try:
            return engine_config.load(args.config)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"batchyard: bad --config: {exc}") from None
    names = args.models or [m.strip() for m in _env("MODELS", "").split(",") if m.strip()]
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
            base_url=args.upstream_url,
            api_key=args.upstream_key,
            timeout_seconds=args.upstream_timeout,
            latency_ms=args.fake_latency_ms,
            error_rate=args.fake_error_rate,
            hang_rate=args.fake_hang_rate,
            seed=args.fake_seed,
        )
    ]


def _settings(args: argparse.Namespace, *, run_worker: bool) -> Settings:
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
        engines=_engines(args),
        auth=not getattr(args, "no_auth", False),
        admin_key=getattr(args, "admin_key", None),
        webhook_hosts=args.webhook_hosts
        or [h.strip() for h in _env("WEBHOOK_HOSTS", "").split(",") if h.strip()],
        webhook_secret=args.webhook_secret,
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
            housekeeping_seconds=args.housekeeping_interval,
            poll_seconds=args.poll_interval,
            status_seconds=args.status_interval,
            shutdown_grace_seconds=args.shutdown_grace,
        ),
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchyard", description="Self-hosted Anthropic Message Batches API."
    )
    parser.add_argument("--version", action="version", version=f"batchyard {__version__}")
    parser.add_argument("--log-level", default=_env("LOG_LEVEL", "info"))
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=_env("LOG_FORMAT", "text"),
        help="json: one object a line, with the request-id of the API call (env BATCHYARD_LOG_FORMAT)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API server (and a worker, unless --no-worker)")
    serve.add_argument("--host", default=_env("HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=_env("PORT", 8000, int))
    serve.add_argument(
        "--public-base-url",
        default=_env("PUBLIC_BASE_URL", None),
        help="make results_url absolute with this base (default: a relative URL)",
    )
    serve.add_argument(
        "--path-prefix",
        default=_env("PATH_PREFIX", None),
        help="also serve the API under this path (e.g. /anthropic), for proxies that keep it",
    )
    serve.add_argument(
        "--batch-expiry",
        type=_duration,
        default=_env("BATCH_EXPIRY", DAY, _duration),
        help="unfinished requests expire this long after creation (default 24h)",
    )
    serve.add_argument(
        "--results-retention",
        type=_duration,
        default=_env("RESULTS_RETENTION", 29 * DAY, _duration),
        help="results are deleted this long after creation (default 29d)",
    )
    serve.add_argument(
        "--no-worker",
        action="store_true",
        default=_env("NO_WORKER", False, lambda s: s.lower() in ("1", "true")),
        help="API only; run `batchyard worker` processes separately",
    )
    a = serve.add_argument_group("access")
    a.add_argument(
        "--admin-key",
        default=_env("ADMIN_KEY", None),
        help="an Admin API key you choose, e.g. from a secret store (env BATCHYARD_ADMIN_KEY;"
        " at least 20 characters; never stored)",
    )
    a.add_argument(
        "--no-auth",
        action="store_true",
        default=_env("NO_AUTH", False, lambda s: s.lower() in ("1", "true")),
        help="development only, loopback only: no keys, every caller is an admin",
    )
    for flag, env, what in (
        ("--requests-per-minute", "REQUESTS_PER_MINUTE", "Messages API calls"),
        ("--batch-requests-per-minute", "BATCH_REQUESTS_PER_MINUTE", "Batches API calls"),
        ("--batch-queued-requests", "BATCH_QUEUED_REQUESTS", "unfinished batch requests"),
    ):
        a.add_argument(
            flag,
            type=int,
            default=_env(env, None, int),
            help=f"default per-workspace limit of {what} (default: none; a workspace's own"
            " rate_limits replace it)",
        )
    _add_store_and_engine(serve)

    worker = sub.add_parser("worker", help="run a worker on its own")
    _add_store_and_engine(worker)
    worker.add_argument(
        "--metrics-port",
        type=int,
        default=_env("METRICS_PORT", None, int),
        help="serve this worker's Prometheus metrics at http://HOST:PORT/metrics"
        " (env BATCHYARD_METRICS_PORT; default: not served)",
    )
    worker.add_argument(
        "--metrics-host",
        default=_env("METRICS_HOST", "127.0.0.1"),
        help="the address --metrics-port listens on (default 127.0.0.1; 0.0.0.0 in a container)",
    )
    cli_keys.add_commands(sub, _add_database)
    cli_client.add_commands(sub)
    doctor = sub.add_parser("doctor", help="check the store, engines and config; say what is wrong")
    doctor.add_argument(
        "--base-url",
        default=_env("URL", None),
        help="also check a running server (env BATCHYARD_URL)",
    )
    doctor.add_argument("--admin-key", default=_env("ADMIN_KEY", None), help=argparse.SUPPRESS)
    _add_store_and_engine(doctor)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logs.configure(args.log_level, args.log_format)
    if args.command == "serve":
        _serve(_settings(args, run_worker=not args.no_worker), args.log_level)
    elif args.command == "worker":
        asyncio.run(_worker(_settings(args, run_worker=True), args.metrics_port, args.metrics_host))
    elif args.command == "doctor":
        from batchyard.doctor import diagnose, report

        settings = _settings(args, run_worker=False)
        raise SystemExit(report(asyncio.run(diagnose(settings, args.base_url))))
    elif args.command in ("keys", "workspaces"):
        asyncio.run(cli_keys.run(args))
    else:
        cli_client.run(args)


def _serve(settings: Settings, log_level: str) -> None:
    import uvicorn

    from batchyard.api.app import create_app

    asyncio.run(cli_keys.prepare_auth(settings))
    app = create_app(settings)
    log = logging.getLogger("batchyard")
    log.info(
        "serving on http://%s:%d (store %s, engine %s); dashboard: http://%s:%d/ui",
        settings.host,
        settings.port,
        settings.database,
        ", ".join(e.name or e.kind for e in settings.engines),
        settings.host,
        settings.port,
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level.lower(),
        access_log=False,
        log_config=None,  # our handler (text or JSON) formats uvicorn's lines too
        timeout_graceful_shutdown=int(settings.worker.shutdown_grace_seconds),
    )


async def _worker(settings: Settings, metrics_port: int | None, metrics_host: str) -> None:
    from batchyard.composition import build_services
    from batchyard.metrics import Metrics

    built = build_services(settings, Metrics(store_gauges=False), run_worker=True)
    await built.store.open()
    worker, metrics = built.worker, built.metrics
    assert worker is not None
    if metrics_port is not None:
        metrics.serve(metrics_port, metrics_host)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, worker.stop)
    logging.getLogger("batchyard").info(
        "worker %s on %s%s",
        worker.id,
        settings.database,
        f"; metrics: http://{metrics_host}:{metrics_port}/metrics" if metrics_port else "",
    )
    try:
        await worker.run()
    finally:
        await built.close()


if __name__ == "__main__":
    main()
