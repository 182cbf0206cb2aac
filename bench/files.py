"""Upload and download of a 200 MB file through both dialects' Files API, on SQLite (bytes
in the files directory) and on PostgreSQL (bytes in `file_chunks`; when
BATCHYARD_TEST_PG names a server), in one run: MB/s each way and the server's peak RSS
growth above its RSS before the transfer.

    .venv/bin/python -m bench.files [MB]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
from tests.databases import fresh_database
from tests.serverproc import ADMIN_KEY, PeakRss, Server

from bench.common import mb

DIALECTS = {
    "anthropic": {"x-api-key": ADMIN_KEY, "anthropic-version": "2023-06-01"},
    "openai": {"authorization": f"Bearer {ADMIN_KEY}"},
}


def transfer(server: Server, dialect: str, path: Path) -> tuple[float, int, float, int]:
    """(upload s, upload RSS growth, download s, download RSS growth)."""
    data = {} if dialect == "anthropic" else {"purpose": "user_data"}
    with (
        httpx.Client(base_url=server.base_url, headers=DIALECTS[dialect], timeout=600) as client,
        path.open("rb") as f,
    ):
        with PeakRss(server.popen.pid) as up:
            t0 = time.perf_counter()
            made = client.post("/v1/files", files={"file": (path.name, f)}, data=data)
            up_s = time.perf_counter() - t0
        made.raise_for_status()
        file_id = made.json()["id"]
        with PeakRss(server.popen.pid) as down:
            t0 = time.perf_counter()
            size = 0
            with client.stream("GET", f"/v1/files/{file_id}/content") as response:
                for chunk in response.iter_bytes(1024 * 1024):
                    size += len(chunk)
            down_s = time.perf_counter() - t0
        assert size == path.stat().st_size, size
        client.delete(f"/v1/files/{file_id}").raise_for_status()
    return up_s, up.growth, down_s, down.growth


def main() -> None:
    megabytes = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    d = Path(tempfile.mkdtemp(prefix="batchyard-bench-"))
    path = d / "big.jsonl"
    line = b'{"custom_id":"r","body":"' + b"y" * 1000 + b'"}\n'
    with path.open("wb") as out:
        for _ in range(megabytes * 1024 * 1024 // len(line)):
            out.write(line)
    size = path.stat().st_size
    stores = {"sqlite (files dir)": str(d / "db.sqlite")}
    if os.environ.get("BATCHYARD_TEST_PG"):
        stores["postgres (file_chunks)"] = fresh_database("bench_files")
    print(f"{size / 1e6:.0f} MB file; MB/s and peak server RSS growth")
    for name, database in stores.items():
        server = Server(database, d / f"{name.split()[0]}.log", ["--no-worker"])
        try:
            for dialect in DIALECTS:
                up_s, up_rss, down_s, down_rss = transfer(server, dialect, path)
                print(
                    f"{name:24} {dialect:9}  upload {size / 1e6 / up_s:7.1f} MB/s"
                    f" (+{mb(up_rss)})  download {size / 1e6 / down_s:7.1f} MB/s"
                    f" (+{mb(down_rss)})"
                )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
