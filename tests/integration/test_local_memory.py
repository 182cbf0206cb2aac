"""KV memory on demand: the embedded engine's server holds about its weights at start,
not its whole preallocated KV cache, and stays within weights + KV + prefix cache
after a batch that fills every sequence."""

from __future__ import annotations

from pathlib import Path

import psutil

from tests.conftest import ServerFactory, client_for
from tests.integration.test_local_engine import ask, batch_texts, call

CAPACITY, CONTEXT = 32, 2048
KV_BYTES = (CAPACITY + 1) * CONTEXT * 30 * 2 * 3 * 64 * 2  # SmolLM2-135M, F16 keys and values
WEIGHTS_BYTES = 271 << 20
CACHE_MB = 64


def test_rss_at_start_and_after_a_full_batch(start_server: ServerFactory, tmp_path: Path) -> None:
    server = start_server(
        "--engine", "local", "--capacity", str(CAPACITY), "--context-tokens", str(CONTEXT),
        "--prefix-cache-mb", str(CACHE_MB), "--poll-interval", "0.1",
    )  # fmt: skip
    proc = psutil.Process(server.popen.pid)
    client = client_for(server)
    client.messages.create(**call("Hi", max_tokens=1))  # the model is loaded and has run
    idle = proc.memory_info().rss
    # preallocated and resident, the KV cache alone would be 1.6 GB
    assert idle < WEIGHTS_BYTES + KV_BYTES // 3, idle >> 20
    prompts = {
        f"p{i}": ask(f"Write a long story about the number {i}.", max_tokens=48)
        for i in range(CAPACITY)
    }
    results = batch_texts(client, prompts)
    assert all(r.type == "succeeded" for r in results.values())
    after = proc.memory_info().rss
    slack = 200 << 20  # the interpreter, the server, the compute buffers
    assert after < WEIGHTS_BYTES + KV_BYTES + (CACHE_MB << 20) + slack, after >> 20
    assert after > idle  # pages came back as sequences wrote into them
