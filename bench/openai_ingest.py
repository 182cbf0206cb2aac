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
import time
from pathlib import Path

import msgspec
from tests.conftest import openai_client_for
from tests.serverproc import PeakRss

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
        oai.files.create(file=("warm.jsonl", path.open("rb").readline()), purpose="batch")
        with PeakRss(server.popen.pid) as rss:
            t = time.perf_counter()
            uploaded = oai.files.create(file=path.open("rb"), purpose="batch")
            t_upload = time.perf_counter() - t
            batch = oai.batches.create(
                input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
            total = time.perf_counter() - t
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
    growth = rss.growth
    print(f"  server RSS growth at peak {mb(growth)} = {growth / size:.2f}x the file")


if __name__ == "__main__":
    main()
