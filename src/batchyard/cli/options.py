"""The `serve`, `worker` and `doctor` options, each also read from a `BATCHYARD_*` variable."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from batchyard.config import DAY, DEFAULT_FILE_QUOTA_BYTES, BodyLimits, default_data_dir
from batchyard.engines.config import BATCH_PRIORITY_ERROR

_Group = argparse._ArgumentGroup


def env_flag(name: str, default: bool) -> bool:
    """A yes/no setting from BATCHYARD_{name}: 0, false or no turn it off."""
    return bool(env(name, default, lambda raw: raw.lower() not in ("0", "false", "no")))


def env(name: str, default: Any, cast: Callable[[str], Any] = str) -> Any:
    """The setting BATCHYARD_{name} (`default` if unset or empty), read with `cast`."""
    raw = os.environ.get(f"BATCHYARD_{name}")
    if raw is None or raw == "":
        return default
    try:
        return cast(raw)
    except ValueError:
        raise SystemExit(f"BATCHYARD_{name}={raw!r} is not a valid value") from None
    except argparse.ArgumentTypeError as exc:
        raise SystemExit(f"BATCHYARD_{name}={raw!r}: {exc}") from None


def batch_priority(text: str) -> int:
    """`--batch-priority`: an integer above 0 (interactive calls are 0, lower goes first)."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(BATCH_PRIORITY_ERROR.format(value))
    return value


def duration(text: str) -> float:
    """`90`, `90s`, `15m`, `24h`, `29d` → seconds."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": DAY}
    text = text.strip()
    if text and text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)


def add_database(p: argparse.ArgumentParser) -> None:
    """`--database`: the store every command opens."""
    p.add_argument(
        "--database",
        default=env("DATABASE", str(default_data_dir() / "batchyard.db")),
        help="a SQLite file path, or postgresql://user@host/db for the shared store of"
        " several API and worker processes (env BATCHYARD_DATABASE; default: %(default)s)",
    )


def add_store_and_engine(p: argparse.ArgumentParser) -> None:
    """The options of every command that opens the store and runs engines."""
    _add_store(p.add_argument_group("store"))
    e = p.add_argument_group(
        "engine", "one engine from flags, or a routing table of several with --config"
    )
    _add_engine(e)
    _add_remote_engine(e)
    _add_openai_engine(e)
    _add_local_engine(e)
    _add_fake_engine(e)
    _add_worker(p.add_argument_group("worker"))


def _add_store(g: _Group) -> None:
    add_database(g)  # type: ignore[arg-type]
    g.add_argument(
        "--sqlite-synchronous",
        choices=["FULL", "NORMAL"],
        default=env("SQLITE_SYNCHRONOUS", "NORMAL"),
        help="fsync of the worker's commits: FULL on every commit; NORMAL (default) at"
        " checkpoints, so a power cut may make the last finished requests run again."
        " Creating, canceling and deleting batches is always fsynced.",
    )


def _add_engine(e: _Group) -> None:
    e.add_argument(
        "--config",
        default=env("CONFIG", None),
        help="TOML routing table: engines, their models and options (overrides the flags below)",
    )
    e.add_argument(
        "--engine",
        choices=["local", "fake", "openai", "anthropic"],
        default=env("ENGINE", "local"),
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


def _add_remote_engine(e: _Group) -> None:
    """openai and anthropic: where the upstream is, and how many requests it is sent."""
    e.add_argument(
        "--upstream-url",
        action="append",
        default=env("UPSTREAM_URL", None, lambda raw: raw.split(",")),
        help="openai: the server's /v1 base URL, again for each replica of the same model"
        " without a router (env: comma-separated); anthropic: the API's base URL",
    )
    e.add_argument(
        "--upstream-key",
        default=env("UPSTREAM_KEY", None),
        help="API key for the upstream (env BATCHYARD_UPSTREAM_KEY)",
    )
    e.add_argument(
        "--upstream-timeout",
        type=duration,
        default=env("UPSTREAM_TIMEOUT", 600.0, duration),
        help="how long one upstream call may take before it is retried (default 600s)",
    )
    e.add_argument(
        "--capacity",
        type=int,
        default=env("CAPACITY", None, int),
        help="concurrent requests the engine takes (openai, anthropic: the most, when"
        " --admission adapts; openai default 1024, or 64 with --admission fixed)",
    )
    e.add_argument(
        "--admission",
        choices=["metrics", "aimd", "fixed"],
        default=env("ADMISSION", None),
        help="how many requests a remote engine is sent at once: metrics (openai's"
        " default) keeps the server's running set full and its queue short from its"
        " Prometheus metrics (vLLM, SGLang, llama-server), else as aimd; aimd (anthropic's"
        " default) adapts to 429s (openai: and latency); fixed sends --capacity",
    )


def _add_openai_engine(e: _Group) -> None:
    e.add_argument(
        "--upstream-metrics-url",
        action="append",
        default=env("UPSTREAM_METRICS_URL", None, lambda raw: raw.split(",")),
        help="openai: the server's Prometheus metrics (default: --upstream-url less /v1,"
        " plus /metrics); again for each replica of a fleet, or dns+http://NAME:PORT/metrics"
        " for every address NAME resolves to (env: comma-separated); their loads add up",
    )
    e.add_argument(
        "--upstream-metrics-interval",
        type=duration,
        default=env("UPSTREAM_METRICS_INTERVAL", 0.5, duration),
        help="openai: how often the server's metrics are read (default 0.5s)",
    )
    e.add_argument(
        "--engine-priority",
        action=argparse.BooleanOptionalAction,
        default=env_flag("ENGINE_PRIORITY", False),
        help="openai: send vLLM's priority field, so interactive calls go before queued"
        " batch work inside the server (start vLLM with --scheduling-policy priority;"
        " default off: a first-come-first-served vLLM refuses it)",
    )
    e.add_argument(
        "--batch-priority",
        type=batch_priority,
        default=env("BATCH_PRIORITY", 10, batch_priority),
        help="openai, with --engine-priority: the priority of batch work (interactive"
        " calls are 0; lower is served first; default 10)",
    )


def _add_local_engine(e: _Group) -> None:
    e.add_argument(
        "--context-tokens",
        type=int,
        default=env("CONTEXT_TOKENS", 2048, int),
        help="local: context window per sequence (default 2048)",
    )
    e.add_argument(
        "--prefix-cache-mb",
        type=int,
        default=env("PREFIX_CACHE_MB", 256, int),
        help="local: memory for the KV of recent prompt prefixes, so prompts that start"
        " alike prefill only what differs (default 256; 0 turns it off)",
    )
    e.add_argument(
        "--deterministic",
        action=argparse.BooleanOptionalAction,
        default=env_flag("DETERMINISTIC", True),
        help="local: temperature 0 gives one answer whatever shares the decode or the"
        " cache (default); --no-deterministic lets llama.cpp's own flash attention kernel"
        " take its tiled loop for long prompts (an answer may then change with load); with"
        " the batch-invariant kernel that make install builds in it changes nothing",
    )
    e.add_argument(
        "--flash-attention",
        action=argparse.BooleanOptionalAction,
        default=env_flag("FLASH_ATTENTION", True),
        help="local: flash attention, still deterministic (the batch-invariant kernel that"
        " make install builds in; with llama.cpp's own one prompts prefill in pieces under"
        " 64 tokens; default on); --no-flash-attention: attention as plain"
        " matrix products, which holds a sequence's whole slice of V in memory",
    )
    e.add_argument(
        "--kv-budget",
        type=int,
        default=env("KV_BUDGET_MB", 1024, int),
        metavar="MB",
        help="local: memory the running sequences' KV may hold together (default 1024; 0:"
        " their slices' whole size); sequences wait, or the last admitted are preempted"
        " and recomputed, to stay within it",
    )
    e.add_argument(
        "--model-path",
        default=env("MODEL_PATH", None),
        help="local: a GGUF file to serve instead of the shipped SmolLM2",
    )


def _add_fake_engine(e: _Group) -> None:
    e.add_argument("--fake-latency-ms", type=float, default=env("FAKE_LATENCY_MS", 0.0, float))
    e.add_argument(
        "--fake-error-rate",
        type=float,
        default=env("FAKE_ERROR_RATE", 0.0, float),
        help="share of calls that fail with a retryable error (0..1)",
    )
    e.add_argument(
        "--fake-hang-rate",
        type=float,
        default=env("FAKE_HANG_RATE", 0.0, float),
        help="share of calls that never answer (0..1); see --engine-timeout",
    )
    e.add_argument("--fake-seed", type=int, default=env("FAKE_SEED", None, int))
    e.add_argument(
        "--fake-capacity",
        type=int,
        default=env("FAKE_CAPACITY", 1024, int),
        help="concurrent requests the fake engine accepts",
    )


def _add_worker(w: _Group) -> None:
    w.add_argument(
        "--lease",
        type=duration,
        default=env("LEASE", 60.0, duration),
        help="claim lease; a dead worker's requests run again after it (default 60s)",
    )
    w.add_argument("--max-attempts", type=int, default=env("MAX_ATTEMPTS", 5, int))
    w.add_argument(
        "--engine-timeout",
        type=duration,
        default=env("ENGINE_TIMEOUT", 600.0, duration),
        help="an engine call running longer is cancelled and retried (default 600s)",
    )
    w.add_argument("--retry-base", type=duration, default=env("RETRY_BASE", 1.0, duration))
    w.add_argument(
        "--concurrency",
        type=int,
        default=env("CONCURRENCY", None, int),
        help="most requests one worker holds (default: twice the engines' capacity)",
    )
    w.add_argument(
        "--prefix-run",
        type=int,
        default=env("PREFIX_RUN", None, int),
        help="requests claimed from batches whose prompts start alike before other batches"
        " get their turn (default: 4x the concurrency; 0: share every claim across all"
        " batches)",
    )
    w.add_argument(
        "--housekeeping-interval",
        type=duration,
        default=env("HOUSEKEEPING_INTERVAL", 5.0, duration),
    )
    w.add_argument("--poll-interval", type=duration, default=env("POLL_INTERVAL", 1.0, duration))
    w.add_argument(
        "--status-interval",
        type=duration,
        default=env("STATUS_INTERVAL", 5.0, duration),
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
        default=env("WEBHOOK_SECRET", None),
        help="HMAC-SHA256 key that signs webhook events (env BATCHYARD_WEBHOOK_SECRET)",
    )
    w.add_argument(
        "--shutdown-grace",
        type=duration,
        default=env("SHUTDOWN_GRACE", 10.0, duration),
        help="on SIGTERM, in-flight requests get this long to finish (default 10s)",
    )


def add_serve_options(serve: argparse.ArgumentParser) -> None:
    """The options of `batchyard serve` beside the store's, engines' and worker's."""
    serve.add_argument("--host", default=env("HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=env("PORT", 8000, int))
    serve.add_argument(
        "--public-base-url",
        default=env("PUBLIC_BASE_URL", None),
        help="make results_url absolute with this base (default: a relative URL)",
    )
    serve.add_argument(
        "--max-file-bytes",
        type=int,
        default=env("MAX_FILE_BYTES", None, int),
        help="refuse uploads larger than this (413; default: the APIs' own limits,"
        " OpenAI 512 MB, Anthropic 500 MB)",
    )
    serve.add_argument(
        "--file-quota-bytes",
        type=int,
        default=env("FILE_QUOTA_BYTES", DEFAULT_FILE_QUOTA_BYTES, int),
        help="refuse an upload that would put a workspace's files over this many bytes"
        " (413; default 100 GB, as hosted; 0: no quota)",
    )
    bodies = BodyLimits()
    for flag, cast, default, what in (
        ("--body-timeout", duration, bodies.timeout, "a body must arrive in time (408)"),
        ("--max-body-reads", int, bodies.max_reads, "bodies received at once (more: 529)"),
        ("--max-body-memory", int, bodies.max_bytes, "bytes those bodies may hold (past: 529)"),
    ):
        variable = flag.removeprefix("--").replace("-", "_").upper()
        serve.add_argument(
            flag,
            type=cast,
            default=env(variable, default, cast),
            help=f"{what}; default %(default)s",
        )
    serve.add_argument(
        "--path-prefix",
        default=env("PATH_PREFIX", None),
        help="also serve the API under this path (e.g. /anthropic), for proxies that keep it",
    )
    serve.add_argument(
        "--batch-expiry",
        type=duration,
        default=env("BATCH_EXPIRY", DAY, duration),
        help="unfinished requests expire this long after creation (default 24h)",
    )
    serve.add_argument(
        "--results-retention",
        type=duration,
        default=env("RESULTS_RETENTION", 29 * DAY, duration),
        help="results are deleted this long after creation (default 29d)",
    )
    serve.add_argument(
        "--no-worker",
        action="store_true",
        default=env("NO_WORKER", False, lambda s: s.lower() in ("1", "true")),
        help="API only; run `batchyard worker` processes separately",
    )
    _add_access(serve.add_argument_group("access"))


def _add_access(a: _Group) -> None:
    a.add_argument(
        "--admin-key",
        default=env("ADMIN_KEY", None),
        help="an Admin API key you choose, e.g. from a secret store (env BATCHYARD_ADMIN_KEY;"
        " at least 20 characters; never stored)",
    )
    a.add_argument(
        "--no-auth",
        action="store_true",
        default=env("NO_AUTH", False, lambda s: s.lower() in ("1", "true")),
        help="development only, loopback only: no keys, every caller is an admin",
    )
    for flag, variable, what in (
        ("--requests-per-minute", "REQUESTS_PER_MINUTE", "Messages API calls"),
        ("--batch-requests-per-minute", "BATCH_REQUESTS_PER_MINUTE", "Batches API calls"),
        ("--batch-queued-requests", "BATCH_QUEUED_REQUESTS", "unfinished batch requests"),
    ):
        a.add_argument(
            flag,
            type=int,
            default=env(variable, None, int),
            help=f"default per-workspace limit of {what} (default: none; a workspace's own"
            " rate_limits replace it)",
        )
