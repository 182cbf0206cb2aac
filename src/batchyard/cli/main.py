"""`batchyard`: the parser of its commands, and the `serve`, `worker` and `doctor` commands."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Sequence

from batchyard import __version__, logs
from batchyard.cli import client as cli_client
from batchyard.cli import keys as cli_keys
from batchyard.cli.options import add_database, add_serve_options, add_store_and_engine, env
from batchyard.cli.settings import settings_of
from batchyard.config import Settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchyard", description="Self-hosted Anthropic Message Batches API."
    )
    parser.add_argument("--version", action="version", version=f"batchyard {__version__}")
    parser.add_argument("--log-level", default=env("LOG_LEVEL", "info"))
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=env("LOG_FORMAT", "text"),
        help="json: one object a line, with the request-id of the API call (env BATCHYARD_LOG_FORMAT)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the API server (and a worker, unless --no-worker)")
    add_serve_options(serve)
    add_store_and_engine(serve)
    _add_worker_command(sub)
    cli_keys.add_commands(sub, add_database)
    cli_client.add_commands(sub)
    _add_doctor_command(sub)
    return parser


def _add_worker_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    worker = sub.add_parser("worker", help="run a worker on its own")
    add_store_and_engine(worker)
    worker.add_argument(
        "--metrics-port",
        type=int,
        default=env("METRICS_PORT", None, int),
        help="serve this worker's Prometheus metrics at http://HOST:PORT/metrics"
        " (env BATCHYARD_METRICS_PORT; default: not served)",
    )
    worker.add_argument(
        "--metrics-host",
        default=env("METRICS_HOST", "127.0.0.1"),
        help="the address --metrics-port listens on (default 127.0.0.1; 0.0.0.0 in a container)",
    )


def _add_doctor_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    doctor = sub.add_parser("doctor", help="check the store, engines and config; say what is wrong")
    doctor.add_argument(
        "--base-url",
        default=env("URL", None),
        help="also check a running server (env BATCHYARD_URL)",
    )
    doctor.add_argument("--admin-key", default=env("ADMIN_KEY", None), help=argparse.SUPPRESS)
    add_store_and_engine(doctor)


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logs.configure(args.log_level, args.log_format)
    if args.command == "serve":
        _serve(settings_of(args, run_worker=not args.no_worker), args.log_level)
    elif args.command == "worker":
        asyncio.run(
            _worker(settings_of(args, run_worker=True), args.metrics_port, args.metrics_host)
        )
    elif args.command == "doctor":
        from batchyard.cli.doctor import diagnose, report

        settings = settings_of(args, run_worker=False)
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
    await built.open()
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
