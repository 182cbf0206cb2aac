"""Settings, read from the command line with `BATCHYARD_*` environment variables as defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from batchyard.engines.config import EngineConfig, ModelConfig
from batchyard.store.records import RateLimits

DAY = 86_400.0


LOCAL_MODEL = ModelConfig(
    id="smollm2-135m-instruct",
    aliases=["smollm2"],
    display_name="SmolLM2 135M Instruct (embedded, llama.cpp)",
    max_input_tokens=2048,
    max_tokens=2048,
)


def default_engines() -> list[EngineConfig]:
    """No configuration: the embedded local model."""
    return [EngineConfig(kind="local", models=[LOCAL_MODEL])]


DEFAULT_FILE_QUOTA_BYTES = 100 * 1000**3
"""A workspace's files hold at most 100 GB by default, as on the hosted Files API."""


def default_data_dir() -> Path:
    env = os.environ.get("BATCHYARD_DATA_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "batchyard"


@dataclass(slots=True)
class WorkerSettings:
    lease_seconds: float = 60.0
    claim_chunk: int = 512
    concurrency: int | None = None
    """Most requests held at once; by default twice the sum of the engines' capacities
    (as they are now: an engine's admission may change its capacity)."""
    prefix_run: int | None = None
    """Requests claimed from one prompt-prefix group before the others get their turn
    (`store.claims.Grouping`); None: four times the concurrency; 0: no grouping (every
    claim shared out across all batches)."""
    max_attempts: int = 5
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 60.0
    engine_timeout_seconds: float = 600.0
    poll_seconds: float = 1.0
    housekeeping_seconds: float = 5.0
    status_seconds: float = 5.0
    """How often the worker writes its own report (the dashboard's Workers panel)."""
    shutdown_grace_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """How request bodies are received (`api/bodies.py`)."""

    timeout: float = 120.0
    """Seconds from the first read to the last byte of a body."""
    max_reads: int = 256
    """Bodies received at once by one process."""
    max_bytes: int = 1024**3
    """Bytes held at once by the bodies being received (JSON bodies are buffered whole;
    an upload's bytes count while its chunk is in hand)."""


@dataclass(slots=True)
class Settings:
    database: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    public_base_url: str | None = None
    path_prefix: str | None = None
    batch_expiry_seconds: float = DAY
    results_retention_seconds: float = 29 * DAY
    sqlite_synchronous: str = "NORMAL"
    run_worker: bool = True
    engines: list[EngineConfig] = field(default_factory=default_engines)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    auth: bool = True
    """False (`--no-auth`, loopback only): every caller is an admin of every workspace."""
    admin_key: str | None = None
    """An Admin API key given by the operator (`--admin-key`); it is never stored."""
    webhook_hosts: list[str] = field(default_factory=list)
    """Hosts a batch's webhook_url may name (none: webhooks are refused)."""
    webhook_secret: str | None = None
    """The HMAC-SHA256 key that signs webhook events."""
    rate_limits: RateLimits = field(default_factory=RateLimits)
    """Server-wide defaults; a workspace's own limits replace them."""
    max_file_bytes: int | None = None
    """A cap on uploads below the Files APIs' own limits (OpenAI 512 MB, Anthropic 500 MB)."""
    file_quota_bytes: int | None = DEFAULT_FILE_QUOTA_BYTES
    """The most bytes one workspace's files may hold (None: no quota)."""
    bodies: BodyLimits = field(default_factory=BodyLimits)
    """How request bodies are received: a deadline, and how many at once (`api/bodies.py`)."""

    def __post_init__(self) -> None:
        if not self.database:
            self.database = str(default_data_dir() / "batchyard.db")

    @property
    def files_dir(self) -> Path:
        """Uploaded and generated files (the OpenAI Files API), beside the database."""
        return self.cache_dir.parent / "files"

    @property
    def cache_dir(self) -> Path:
        """Derived files (converted model weights) live beside a SQLite database, or in
        the data directory when the store is PostgreSQL."""
        if "://" in self.database and not self.database.startswith("sqlite:"):
            return default_data_dir() / "models"
        path = self.database.removeprefix("sqlite:///").removeprefix("sqlite://")
        return Path(path).resolve().parent / "models"
