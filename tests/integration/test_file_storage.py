"""Where file bytes live, on the real server: in PostgreSQL with the PostgreSQL store (an
API process and a worker process with no shared directory), in the files directory
with SQLite; expired files deleted (records and bytes); the workspace storage quota."""

from __future__ import annotations

import json
import time
from pathlib import Path

import openai
import pytest

from tests.conftest import ServerFactory, openai_client_for
from tests.databases import ON_POSTGRES, PG_URL, fresh_database, query
from tests.integration.test_openai_batches import line, upload, wait_done
from tests.serverproc import PeakRss, Proc, Server


def stored_chunks(database: str | Path) -> int:
    return int(query(database, "SELECT COUNT(*) FROM file_chunks")[0][0])


def stored_blobs(server: Server) -> int:
    """Chunks in the database (PostgreSQL; each blob here is one chunk), else the files
    in the files directory beside the SQLite database."""
    if ON_POSTGRES:
        return stored_chunks(server.database)
    return sum(p.is_file() for p in (Path(server.database).parent / "files").rglob("*"))


@pytest.mark.skipif(not PG_URL, reason="needs BATCHYARD_TEST_PG")
def test_an_api_and_a_worker_process_share_files_through_postgres(
    tmp_path: Path, start_server: ServerFactory
) -> None:
    db = fresh_database("files")
    api_dir, worker_dir = tmp_path / "api-data", tmp_path / "worker-data"
    api = start_server("--no-worker", database=db, env={"BATCHYARD_DATA_DIR": str(api_dir)})
    worker = Proc(
        ["worker", "--database", db, "--poll-interval", "0.05", "--housekeeping-interval", "0.2"],
        tmp_path / "worker.log",
        env={"BATCHYARD_DATA_DIR": str(worker_dir)},
    )
    try:
        oai = openai_client_for(api)
        lines = [line(f"r{i}", "x" * 2000 + str(i)) for i in range(600)]  # > 1 MiB: chunks
        input_id = upload(oai, lines)
        assert stored_chunks(db) == 2
        batch = oai.batches.create(
            input_file_id=input_id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        done = wait_done(oai, batch.id, timeout=60)
        assert done.status == "completed", worker.log()
        assert done.output_file_id and done.request_counts
        assert done.request_counts.completed == 600
        out = [json.loads(x) for x in oai.files.content(done.output_file_id).text.splitlines()]
        assert sorted(x["custom_id"] for x in out) == sorted(f"r{i}" for i in range(600))
        # No process wrote a file of bytes anywhere in its data directory.
        for folder in (api_dir, worker_dir):
            assert not (folder / "files").exists()
        deleted = oai.files.delete(done.output_file_id)
        assert deleted.deleted
        assert query(db, "SELECT COUNT(*) FROM files")[0][0] == 1
        assert stored_chunks(db) == 2  # the input's; the output's went with it
    finally:
        worker.stop()


def test_expired_files_are_deleted_with_their_bytes(start_server: ServerFactory) -> None:
    server = start_server("--housekeeping-interval", "0.1")
    oai = openai_client_for(server)
    keep = oai.files.create(file=("keep.jsonl", b"k\n"), purpose="batch")
    made = oai.files.create(
        file=("soon.jsonl", b"s\n"),
        purpose="batch",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert stored_blobs(server) == 2
    # The API takes an hour at least: move the expiry into the past in the database.
    query(server.database, "UPDATE files SET expires_at = 1 WHERE id = ?", made.id)
    with pytest.raises(openai.NotFoundError):
        oai.files.retrieve(made.id)
    deadline = time.monotonic() + 10
    while query(server.database, "SELECT COUNT(*) FROM files")[0][0] != 1:
        assert time.monotonic() < deadline, "the expired file was not deleted"
        time.sleep(0.05)
    assert stored_blobs(server) == 1
    assert oai.files.content(keep.id).content == b"k\n"


def test_an_upload_over_the_workspace_quota_is_refused(start_server: ServerFactory) -> None:
    server = start_server("--file-quota-bytes", "1000")
    oai = openai_client_for(server)
    first = oai.files.create(file=("a.jsonl", b"a" * 600), purpose="batch")
    with pytest.raises(openai.APIStatusError) as refused:
        oai.files.create(file=("b.jsonl", b"b" * 600), purpose="batch")
    assert refused.value.status_code == 413
    assert "quota of 1,000 bytes (600 in use)" in refused.value.message
    assert [f.id for f in oai.files.list()] == [first.id]
    assert stored_blobs(server) == 1
    oai.files.delete(first.id)
    oai.files.create(file=("c.jsonl", b"c" * 1000), purpose="batch")  # room again


def test_a_large_download_keeps_server_memory_flat(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    server = start_server()
    oai = openai_client_for(server)
    data = b"z" * (40 * 1024 * 1024)
    made = oai.files.create(file=("big.bin", data), purpose="user_data")
    oai.files.content(made.id)  # warm
    streamed = oai.files.with_streaming_response
    with PeakRss(server.popen.pid) as rss, streamed.content(made.id) as response:
        size = sum(len(chunk) for chunk in response.iter_bytes(1024 * 1024))
    assert size == len(data)
    assert rss.growth < len(data) / 4, f"server RSS grew {rss.growth / 2**20:.1f} MB"
