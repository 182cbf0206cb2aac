"""Helpers shared by the benchmarks: request bodies, a server process, memory readings."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import httpx
import msgspec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.serverproc import HEADERS, Server  # noqa: E402

PROMPT = (
    "Classify the sentiment of the following product review as positive, negative or "
    "neutral, and explain your reasoning in one sentence. Review: the battery lasts for "
    "days, the screen is bright and sharp, but the speaker is tinny and the case scratches "
    "easily. Overall I would buy it again for the price. Item number "
)


def batch_body(n: int, model: str = "claude-bench", max_tokens: int = 128) -> bytes:
    """A create body of `n` requests, about 450 bytes each (100k ≈ 45 MB)."""
    return msgspec.json.encode(
        {
            "requests": [
                {
                    "custom_id": f"request-{i:06d}",
                    "params": {
                        "model": model,
                        "max_tokens": max_tokens,
                        "temperature": 0.0,
                        "messages": [{"role": "user", "content": f"{PROMPT}{i}."}],
                    },
                }
                for i in range(n)
            ]
        }
    )


def start_server(*extra: str) -> tuple[Server, Path]:
    d = Path(tempfile.mkdtemp(prefix="batchyard-bench-"))
    return Server(d / "db.sqlite", d / "server.log", extra), d


def headers() -> dict[str, str]:
    return {**HEADERS, "content-type": "application/json"}


def wait_ended(
    base_url: str, batch_id: str, timeout: float = 600, poll: float = 0.01
) -> tuple[float, dict[str, object]]:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base_url, headers=headers()) as c:
        while True:
            batch = c.get(f"/v1/messages/batches/{batch_id}").json()
            if batch["processing_status"] == "ended":
                return time.perf_counter(), batch
            if time.monotonic() > deadline:
                raise TimeoutError(batch)
            time.sleep(poll)


def proc_status(pid: int, field: str) -> int:
    """A `/proc/<pid>/status` memory field (VmRSS, VmHWM) in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"
