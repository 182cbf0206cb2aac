"""The OpenAI Files API with the official `openai` SDK."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from tests.conftest import ServerFactory, openai_client_for, workspace_key
from tests.serverproc import PeakRss, Server

LINES = b'{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{}}\n'


@pytest.fixture
def oai(server: Server) -> openai.OpenAI:
    return openai_client_for(server)


def test_upload_retrieve_list_content_delete(oai: openai.OpenAI, tmp_path: Path) -> None:
    path = tmp_path / "input.jsonl"
    path.write_bytes(LINES * 3)
    made = oai.files.create(file=path.open("rb"), purpose="batch")
    assert made.id.startswith("file-") and made.object == "file"
    assert made.bytes == len(LINES) * 3 and made.filename == "input.jsonl"
    assert made.purpose == "batch" and made.expires_at is None
    assert oai.files.retrieve(made.id) == made
    assert oai.files.content(made.id).content == LINES * 3

    second = oai.files.create(file=("two.jsonl", LINES), purpose="batch")
    listed = [f.id for f in oai.files.list()]
    assert listed[:2] == [second.id, made.id]  # newest first
    ascending = [f.id for f in oai.files.list(order="asc")]
    assert ascending.index(made.id) < ascending.index(second.id)
    page = oai.files.list(limit=1)
    assert [f.id for f in page.data] == [second.id] and page.has_more
    after = oai.files.list(limit=1, after=second.id)
    assert [f.id for f in after.data] == [made.id]
    assert [f.id for f in oai.files.list(purpose="vision")] == []

    gone = oai.files.delete(made.id)
    assert gone.deleted and gone.id == made.id
    with pytest.raises(openai.NotFoundError) as missing:
        oai.files.retrieve(made.id)
    assert missing.value.request_id and missing.value.request_id.startswith("req_")
    assert missing.value.body == {  # the OpenAI error shape
        "message": f"No such File object: {made.id}",
        "type": "not_found_error",
        "param": "file_id",
        "code": "not_found",
    }
    with pytest.raises(openai.NotFoundError):
        oai.files.content(made.id)


def test_upload_errors(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        oai.files.create(file=("x.jsonl", LINES), purpose="nonsense")  # type: ignore[arg-type]
    assert bad.value.param == "purpose"
    with pytest.raises(openai.BadRequestError, match="expires_after"):
        oai.files.create(
            file=("x.jsonl", LINES),
            purpose="batch",
            expires_after={"anchor": "created_at", "seconds": 5},
        )
    made = oai.files.create(
        file=("x.jsonl", LINES),
        purpose="batch",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert made.expires_at == made.created_at + 3600
    with pytest.raises(openai.AuthenticationError) as denied:
        oai.with_options(api_key="sk-wrong").files.list()
    assert denied.value.code == "invalid_api_key"


def test_files_are_workspace_scoped(server: Server) -> None:
    made = workspace_key(server, "files-a")
    mine = openai_client_for(server, api_key=made)
    theirs = openai_client_for(server)  # the admin key acts in the default workspace
    f = mine.files.create(file=("a.jsonl", LINES), purpose="batch")
    for call in (
        lambda: theirs.files.retrieve(f.id),
        lambda: theirs.files.content(f.id),
        lambda: theirs.files.delete(f.id),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert f.id not in [x.id for x in theirs.files.list()]
    assert mine.files.retrieve(f.id).id == f.id


def test_a_50_mb_upload_keeps_server_memory_flat(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    server = start_server()
    oai = openai_client_for(server)
    line = (
        b'{"custom_id":"r","method":"POST","url":"/v1/chat/completions","body":{"x":"'
        + (b"y" * 900)
        + b'"}}\n'
    )
    path = tmp_path / "big.jsonl"
    with path.open("wb") as out:
        for _ in range(50 * 1024 * 1024 // len(line)):
            out.write(line)
    size = path.stat().st_size
    oai.files.create(file=("warm.jsonl", LINES), purpose="batch")
    with PeakRss(server.popen.pid) as rss:
        made = oai.files.create(file=path.open("rb"), purpose="batch")
    assert made.bytes == size
    growth = rss.growth
    assert growth < size / 4, (
        f"server RSS grew {growth / 2**20:.1f} MB for a {size / 2**20:.0f} MB upload"
    )
    assert oai.files.content(made.id).content[: len(line)] == line
