"""KV memory on demand: `batchyard serve` on the defaults holds about its weights at start,
stays within weights + KV budget + prefix cache while a batch fills every sequence, and
goes back under 600 MB once idle; a prompt the KV budget cannot hold is a clear error."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import anthropic
import psutil
import pytest

from tests.conftest import ServerFactory, client_for
from tests.integration.test_local_engine import ask, batch_texts, call

CAPACITY = 32  # the defaults: 32 sequences of 2048 tokens, a 1024 MB KV budget, 256 MB of cache
KV_SLICES = (CAPACITY + 1) * 2048 * 30 * 2 * 3 * 64 * 2  # SmolLM2-135M, F16 keys and values
WEIGHTS_BYTES = 271 << 20
TARGET = 600 << 20
"""Idle RSS: measured 372 MB here (384 MB with transparent huge pages `always`)."""


def test_rss_at_start_under_load_and_once_idle(start_server: ServerFactory, tmp_path: Path) -> None:
    server = start_server("--engine", "local", "--poll-interval", "0.1")
    proc = psutil.Process(server.popen.pid)
    client = client_for(server)
    client.messages.create(**call("Hi", max_tokens=1))  # the model is loaded and has run
    idle = proc.memory_info().rss
    # preallocated and resident, the KV slices alone would be 1.6 GB
    assert idle < TARGET, idle >> 20
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            peak[0] = max(peak[0], proc.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    prompts = {
        f"p{i}": ask(f"Write a long story about the number {i}.", max_tokens=48)
        for i in range(CAPACITY)
    }
    try:
        results = batch_texts(client, prompts)
    finally:
        stop.set()
        sampler.join()
    assert all(r.type == "succeeded" for r in results.values())
    assert peak[0] > idle  # pages came back as sequences wrote into them
    slack = 200 << 20  # the interpreter, the server, the compute buffers
    assert peak[0] < WEIGHTS_BYTES + (1024 << 20) + (256 << 20) + slack, peak[0] >> 20
    assert peak[0] < WEIGHTS_BYTES + KV_SLICES // 2, peak[0] >> 20  # flash attention: KV by token
    deadline = time.monotonic() + 10
    while proc.memory_info().rss >= TARGET and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proc.memory_info().rss < TARGET, proc.memory_info().rss >> 20


def test_a_prompt_beyond_the_kv_budget_is_a_clear_error(start_server: ServerFactory) -> None:
    server = start_server("--engine", "local", "--kv-budget", "4", "--poll-interval", "0.1")
    client = client_for(server)
    with pytest.raises(anthropic.BadRequestError) as exc:
        client.messages.create(**call("word " * 400))
    assert "KV budget" in exc.value.message
    assert exc.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    ok = client.messages.create(**call("What is the capital of France?", max_tokens=8))
    assert ok.usage.input_tokens > 0
