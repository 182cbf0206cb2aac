"""The routing table's configuration: engines, the models each serves, their options.

Written in TOML (`--config FILE`), or built from command-line flags for the
common one-engine case:

    [[engines]]
    kind = "openai"                        # fake | local | openai | anthropic
    base_url = "http://127.0.0.1:8001/v1"
    api_key_env = "VLLM_API_KEY"           # or api_key = "..."
    capacity = 256                         # the most at once (default 1024; see admission)
    admission = "metrics"                  # metrics | aimd | fixed
    priority = true                        # vLLM --scheduling-policy priority
    models = [   # prices: USD per million tokens, for the cost report (optional)
      { id = "llama-3.1-8b", upstream = "meta-llama/Llama-3.1-8B-Instruct", aliases = ["llama"], prices = { input = 0.20, output = 0.60 } },
    ]
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import msgspec

EngineKind = Literal["fake", "local", "openai", "anthropic"]
AdmissionMode = Literal["metrics", "aimd", "fixed"]
"""How a remote engine's concurrency is set (`engines/remote/concurrency.py`)."""


class ModelPrices(msgspec.Struct, forbid_unknown_fields=True):
    """USD per million tokens, for the cost report. Cache prices default to the hosted
    API's multiples of the input price (reads 0.1x, 5-minute writes 1.25x, 1-hour
    writes 2x); batch results cost `batch_discount` of the price (the hosted 50%)."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write_5m: float | None = None
    cache_write_1h: float | None = None
    batch_discount: float = 0.5

    def __post_init__(self) -> None:
        for name in ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"prices.{name}: must not be negative")
        if not 0 < self.batch_discount <= 1:
            raise ValueError("prices.batch_discount: must be in (0, 1]")

    def per_million(self) -> dict[str, float]:
        """Each token type of the usage report → its price."""
        return {
            "uncached_input_tokens": self.input,
            "output_tokens": self.output,
            "cache_read_input_tokens": _or(self.cache_read, self.input * 0.1),
            "cache_creation.ephemeral_5m_input_tokens": _or(self.cache_write_5m, self.input * 1.25),
            "cache_creation.ephemeral_1h_input_tokens": _or(self.cache_write_1h, self.input * 2),
        }


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


class SamplingDefaults(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Sampling a model's requests get when they leave it out (a request's own values,
    in either dialect, always win): many clients cannot send a temperature at all."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None

    def __post_init__(self) -> None:
        if self.temperature is not None and not 0.0 <= self.temperature <= 1.0:
            raise ValueError("sampling.temperature: must be in [0, 1]")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ValueError("sampling.top_p: must be in (0, 1]")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError("sampling.top_k: must be at least 1")


SHIPPED_SAMPLING = SamplingDefaults(temperature=0.2, top_p=0.9)
"""The embedded model's: SmolLM2-Instruct's model card recommends temperature 0.2 and
top_p 0.9 (at the hosted APIs' default of 1.0 the 135M model rambles)."""


class ModelConfig(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    """The name clients send; a glob (`claude-*`) routes every matching name."""
    aliases: list[str] = []
    upstream: str | None = None
    """The name sent to the engine (default: the name the client sent)."""
    display_name: str | None = None
    max_input_tokens: int | None = None
    max_tokens: int | None = None
    prices: ModelPrices | None = None
    """What its tokens cost (the cost report); none: not priced."""
    sampling: SamplingDefaults | None = None
    """Defaults for requests that leave sampling out (the embedded engine on its shipped
    model: `SHIPPED_SAMPLING`; elsewhere none: the engine's own defaults)."""


class EngineConfig(msgspec.Struct, forbid_unknown_fields=True):
    kind: EngineKind
    models: list[ModelConfig]
    name: str = ""
    capacity: int | None = None
    # remote engines (openai, anthropic)
    base_url: str | None = None
    base_urls: list[str] | None = None
    """openai: replicas of the same models without a router (each call to one with
    room, a prompt prefix to the same one; one that fails is taken out and probed back
    in). Instead of `base_url`; each replica's metrics are read beside it."""
    api_key: str | None = None
    api_key_env: str | None = None
    timeout_seconds: float = 600.0
    adaptive_concurrency: bool = True
    """False: a fixed capacity (the same as admission = "fixed")."""
    admission: AdmissionMode | None = None
    """How many requests are sent at once: "metrics" (openai's default) follows the
    server's own load from its Prometheus metrics, falling back to "aimd" where it has
    none; "aimd" (anthropic's default) adapts to 429s (openai: and latency); "fixed"
    sends `capacity`. Without a `capacity`, "metrics" and "aimd" go up to 1024."""
    metrics_url: str | list[str] | None = None
    """The server's metrics (default: base_url less a trailing /v1, plus /metrics). A
    fleet behind a router: each replica's, as a list, or `dns+http://name:port/metrics`
    for every address `name` resolves to (re-resolved every 5 s); their loads add up."""
    metrics_interval_seconds: float = 0.5
    target_queue: int | None = None
    """Requests to keep queued inside the server (default: max(2, running / 8))."""
    priority: bool = False
    """openai: send vLLM's `priority` (interactive 0, batch `batch_priority`); only
    for a server started with `--scheduling-policy priority`."""
    batch_priority: int = 10
    """vLLM's priority of batch work: above 0, as lower is served first and interactive
    calls are 0."""
    # fake engine
    latency_ms: float = 0.0
    error_rate: float = 0.0
    hang_rate: float = 0.0
    """fake: share of calls that never answer (the worker's engine timeout must end them)."""
    seed: int | None = None
    # local engine
    model_path: str | None = None
    context_tokens: int = 2048
    """Per sequence: the KV cache holds capacity x context_tokens tokens."""
    threads: int | None = None
    prefix_cache_mb: int = 256
    """Memory for the KV of recent prompt prefixes, reused by prompts that start alike (0: off)."""
    deterministic: bool = True
    """False lifts the 64-row limit of llama.cpp's own flash attention kernel (its tiled
    loop for long prompts), whose numbers follow the batch's shape; with the
    batch-invariant kernel `make install` builds in it changes nothing."""
    flash_attention: bool = True
    """Flash attention, deterministic (batchyard's batch-invariant CPU kernel, or with
    llama.cpp's own one prompt pieces under 64 rows); off: attention as plain matrix
    products (V kept transposed: a sequence holds its whole V slice)."""
    kv_budget_mb: int = 1024
    """Memory the running sequences' KV may hold together (0: their slices' whole size)."""

    def __post_init__(self) -> None:
        if self.batch_priority <= 0:
            raise ValueError(BATCH_PRIORITY_ERROR.format(self.batch_priority))


BATCH_PRIORITY_ERROR = (
    "batch_priority must be above 0 (got {}): interactive calls are sent at 0 and lower"
    " is served first, so batch work at 0 or below would go level with or before them"
)


class RoutingConfig(msgspec.Struct, forbid_unknown_fields=True):
    engines: list[EngineConfig]


def load(path: str | Path) -> list[EngineConfig]:
    try:
        return msgspec.toml.decode(Path(path).read_bytes(), type=RoutingConfig).engines
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None


def models_from_flags(names: list[str]) -> list[ModelConfig]:
    """`--model NAME` or `--model NAME=UPSTREAM`."""
    models = []
    for name in names:
        own, _, upstream = name.partition("=")
        models.append(ModelConfig(id=own.strip(), upstream=upstream.strip() or None))
    return models
