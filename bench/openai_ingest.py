"""OpenAI dialect ingest: upload and validate a 50,000-line (~100 MB) batch input file.

Measured: `POST /v1/files` (multipart upload) then `POST /v1/batches` (every line
decoded, checked, translated to a Messages request and stored) against a real
server, and the server's peak RSS growth. Baseline, in the same run: reading the
file and decoding every line with msgspec, in this process. Target: ≤ 1.5x.

    python -m bench.openai_ingest [LINES]
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

import msgspec
import psutil
from tests.conftest import openai_client_for

from batchyard.wire.openai import InputLine
from bench.common import mb, start_server

FILLER = "Summarise this support ticket in one sentence and label its urgency. " * 26


def write_input(path: Path, n: int) -> int:
    with path.open("wb") as out:
        for i in range(n):
            line = {
                "custom_id": f"request-{i:06d}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {
                    "model": "claude-bench",
                    "max_tokens": 64,
                    "messages": [
                        {"role": "system", "content": "You are terse."},
                        {"role": "user", "content": f"Ticket {i}: {FILLER}"},
                    ],
                },
            }
            out.write(msgspec.json.encode(line) + b"\n")
    return path.stat().st_size


def baseline(path: Path) -> float:
    decoder = msgspec.json.Decoder(InputLine)
    t = time.perf_counter()
    with path.open("rb") as f:
        for raw in f:
            decoder.decode(raw)
    return time.perf_counter() - t


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    folder = Path(tempfile.mkdtemp(prefix="batchyard-openai-ingest-"))
    path = folder / "input.jsonl"
    size = write_input(path, n)
    base = baseline(path)
    server, _ = start_server("--no-worker")
    try:
        oai = openai_client_for(server).with_options(timeout=600)
        proc = psutil.Process(server.popen.pid)
        oai.files.create(file=("warm.jsonl", path.open("rb").readline()), purpose="batch")
        before = proc.memory_info().rss
        peak = [before]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], proc.memory_info().rss)
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        t = time.perf_counter()
        try:
            uploaded = oai.files.create(file=path.open("rb"), purpose="batch")
            t_upload = time.perf_counter() - t
            batch = oai.batches.create(
                input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
            total = time.perf_counter() - t
        finally:
            done.set()
            sampler.join()
        assert batch.status == "in_progress", batch
        assert batch.request_counts is not None and batch.request_counts.total == n
    finally:
        server.stop()
    print(f"OpenAI ingest: {n:,} lines, {mb(size)} (upload + validate + store)")
    print(f"  baseline: read + decode every line  {base:6.2f} s   {size / base / 2**20:7.1f} MB/s")
    print(
        f"  server: upload {t_upload:5.2f} s + create {total - t_upload:5.2f} s"
        f" = {total:6.2f} s   {size / total / 2**20:7.1f} MB/s   ratio {total / base:.2f}x"
    )
    growth = peak[0] - before
    print(f"  server RSS growth at peak {mb(growth)} = {growth / size:.2f}x the file")


if __name__ == "__main__":
    main()
