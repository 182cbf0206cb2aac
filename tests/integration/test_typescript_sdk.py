"""The Anthropic Files API with the TypeScript SDK (`@anthropic-ai/sdk`, pinned in
tests/node/package.json): upload, pages, metadata, download, delete and the 404s,
against a real server. `make install` runs `npm ci` in tests/node; the script
(tests/node/files.mjs) does the calls in one run and prints what it got as JSON."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import workspace_key
from tests.serverproc import Server

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
SDK_DIR = NODE_DIR / "node_modules" / "@anthropic-ai" / "sdk"
PINNED = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]["@anthropic-ai/sdk"]
DATA = b"The capital of France is Paris.\n" * 40


def _node() -> str:
    """The `node` to run the script with; a skip where it or the SDK is missing, but
    a failure under CI (which must run this test)."""
    node = shutil.which("node")
    if node is not None and SDK_DIR.is_dir():
        return node
    missing = (
        "node is not on PATH"
        if node is None
        else f"the TypeScript SDK is missing from {SDK_DIR} (`make install` runs npm ci)"
    )
    if os.environ.get("CI"):
        pytest.fail(f"{missing}: CI must run the TypeScript SDK test")
    pytest.skip(missing)


@pytest.fixture(scope="module")
def run(server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run of tests/node/files.mjs, with a key of a fresh workspace (so its pages
    hold only the script's files) and one of another workspace."""
    node = _node()
    upload = tmp_path_factory.mktemp("ts-sdk") / "notes.txt"
    upload.write_bytes(DATA)
    keys = [workspace_key(server, "ts-sdk-files"), workspace_key(server, "ts-sdk-other")]
    done = subprocess.run(
        [node, str(NODE_DIR / "files.mjs"), server.base_url, *keys, str(upload)],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"files.mjs failed ({done.returncode}):\n{done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _when(stamp: str) -> datetime:
    when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert when.tzinfo is not None
    return when


def test_the_pinned_sdk_ran(run: dict[str, Any]) -> None:
    assert run["version"] == PINNED


def test_upload_and_metadata(run: dict[str, Any]) -> None:
    notes, binary, *jsonl = run["uploaded"]
    assert notes["type"] == "file" and notes["id"].startswith(
        "file-"
    )  # one kind of id for both dialects
    assert notes["filename"] == run["upload_name"] == "notes.txt"
    assert notes["mime_type"] == "text/plain" and notes["size_bytes"] == len(DATA)
    assert notes["downloadable"] is True and notes.get("expires_at") is None
    _when(notes["created_at"])
    assert binary["filename"] == "all-bytes.bin" and binary["size_bytes"] == 256
    assert binary["mime_type"] == "application/octet-stream"
    assert [f["mime_type"] for f in jsonl] == ["application/jsonl"] * 3
    assert len({f["id"] for f in run["uploaded"]}) == 5
    assert run["retrieved"] == notes
    assert run["beta"]["retrieved"] == binary


def test_download_gives_the_bytes_back(run: dict[str, Any]) -> None:
    assert base64.b64decode(run["downloaded"]["base64"]) == DATA
    assert run["downloaded"]["content_type"].startswith("text/plain")
    assert base64.b64decode(run["downloaded_binary"]["base64"]) == bytes(range(256))


def test_pages_follow_next_page(run: dict[str, Any]) -> None:
    newest_first = [f["id"] for f in reversed(run["uploaded"])]
    first = run["first_page"]
    assert first["ids"] == newest_first[:2] and first["has_next"] is True
    assert first["next_page"].startswith("page_")
    assert run["pages"] == [newest_first[:2], newest_first[2:4], newest_first[4:]]
    assert run["auto"] == newest_first
    assert run["beta"]["listed"] == newest_first  # pages of three, beta header
    notes, jsonl0 = run["uploaded"][0]["id"], run["uploaded"][2]["id"]
    assert run["by_ids"] == [jsonl0, notes]  # found ones only, newest first


def _is_not_found(failure: dict[str, Any], file_id: str) -> None:
    assert failure.get("returned") is None, failure
    assert failure["name"] == "NotFoundError" and failure["not_found"] is True
    assert failure["status"] == 404 and failure["type"] == "not_found_error"
    assert failure["request_id"].startswith("req_")
    assert failure["body"] == {  # the Anthropic error shape
        "type": "error",
        "error": {"type": "not_found_error", "message": f"No such File object: {file_id}"},
        "request_id": failure["request_id"],
    }


def test_deleted_files_are_404(run: dict[str, Any]) -> None:
    made = [f["id"] for f in run["uploaded"]]
    assert run["deleted"] == [{"id": i, "type": "file_deleted"} for i in made]
    for call in ("retrieve", "download", "delete", "beta_retrieve"):
        _is_not_found(run["after_delete"][call], made[0])
    assert run["left"] == []


def test_another_workspace_gets_404(run: dict[str, Any]) -> None:
    notes = run["uploaded"][0]["id"]
    for call in ("retrieve", "download", "delete"):
        _is_not_found(run["cross"][call], notes)
    assert run["cross"]["list"] == []
    assert run["still_there"] == notes  # their delete did not touch it
