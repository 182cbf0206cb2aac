"""The Anthropic Files API on `/v1/files` with the official `anthropic` SDK (2.14,
strict response validation): `client.files.*`, `client.beta.files.*` with the files
beta, and the older generation's `after_id` / `before_id` pages; the same files seen
by the `openai` SDK."""

from __future__ import annotations

from pathlib import Path

import anthropic
import openai
import pytest
from anthropic.pagination import SyncPage
from anthropic.types import FileMetadata

from tests.conftest import ServerFactory, client_for, openai_client_for, workspace_key
from tests.serverproc import Server

BETA = "files-api-2025-04-14"
DATA = b"The capital of France is Paris.\n" * 40


@pytest.fixture
def ant(server: Server) -> anthropic.Anthropic:
    """A key of a workspace of its own, so pages hold only this test's files."""
    return client_for(server, api_key=workspace_key(server, "anthropic-files"))


def test_upload_list_retrieve_download_delete(ant: anthropic.Anthropic, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(DATA)
    made = ant.files.upload(file=path.open("rb"))  # no purpose: the Anthropic API has none
    assert made.type == "file" and made.filename == "notes.txt"
    assert made.size_bytes == len(DATA) and made.mime_type == "text/plain"
    assert made.downloadable is True and made.expires_at is None
    assert made.created_at.tzinfo is not None
    assert ant.files.retrieve_metadata(made.id) == made
    assert ant.files.download(made.id).read() == DATA

    gone = ant.files.delete(made.id)
    assert gone.id == made.id and gone.type == "file_deleted"
    with pytest.raises(anthropic.NotFoundError) as missing:
        ant.files.retrieve_metadata(made.id)
    assert missing.value.request_id and missing.value.request_id.startswith("req_")
    assert missing.value.body == {  # the Anthropic error shape, not OpenAI's
        "type": "error",
        "error": {"type": "not_found_error", "message": f"No such File object: {made.id}"},
        "request_id": missing.value.request_id,
    }
    with pytest.raises(anthropic.NotFoundError):
        ant.files.download(made.id)
    with pytest.raises(anthropic.NotFoundError):
        ant.files.delete(made.id)


def test_the_beta_generation(ant: anthropic.Anthropic) -> None:
    files = ant.beta.files
    made = files.upload(file=("report.pdf", b"%PDF-1.4 fake", "application/pdf"), betas=[BETA])
    assert made.mime_type == "application/pdf" and made.downloadable
    assert files.retrieve_metadata(made.id, betas=[BETA]).id == made.id
    assert files.download(made.id, betas=[BETA]).read() == b"%PDF-1.4 fake"
    assert [f.id for f in files.list(betas=[BETA])] == [made.id]
    assert files.delete(made.id, betas=[BETA]).type == "file_deleted"
    assert list(files.list(betas=[BETA])) == []


def test_pages_in_both_styles(ant: anthropic.Anthropic) -> None:
    made = [ant.files.upload(file=(f"f{i}.jsonl", b"{}\n")) for i in range(5)]
    newest_first = [f.id for f in reversed(made)]
    assert made[0].mime_type == "application/jsonl"

    # 2.14: an opaque `page` cursor in `next_page`; the SDK follows it.
    first = ant.files.list(limit=2)
    assert [f.id for f in first.data] == newest_first[:2] and first.next_page
    assert first.next_page.startswith("page_")
    assert [f.id for f in ant.files.list(limit=2)] == newest_first  # auto-paging: 3 pages
    pages = [[f.id for f in p.data] for p in first.iter_pages()]
    assert pages == [newest_first[:2], newest_first[2:4], newest_first[4:]]
    assert ant.files.list(ids=[made[1].id, "file-nope", made[3].id]).data == [made[3], made[1]]

    # The older generation: `after_id` / `before_id` with `has_more`, `first_id`, `last_id`.
    def older(**params: object) -> SyncPage[FileMetadata]:
        return ant.get_api_list(
            "/v1/files",
            model=FileMetadata,
            page=SyncPage[FileMetadata],
            options={"params": params, "headers": {"anthropic-beta": BETA}},
        )

    page = older(limit=2)
    assert page.has_more and (page.first_id, page.last_id) == (newest_first[0], newest_first[1])
    assert [f.id for f in older(limit=2)] == newest_first  # follows after_id = last_id
    tail = older(limit=2, after_id=newest_first[3])
    assert [f.id for f in tail.data] == newest_first[4:] and tail.has_more is False
    back = older(limit=2, before_id=newest_first[4])
    assert [f.id for f in back.data] == newest_first[2:4] and back.has_more

    with pytest.raises(anthropic.BadRequestError, match="after_id"):
        older(after_id="file-nope")
    with pytest.raises(anthropic.BadRequestError, match="limit"):
        ant.files.list(limit=1001)


def test_files_are_workspace_scoped(server: Server) -> None:
    mine = client_for(server, api_key=workspace_key(server, "anthropic-files-a"))
    theirs = client_for(server, api_key=workspace_key(server, "anthropic-files-b"))
    f = mine.files.upload(file=("a.txt", b"mine"))
    for call in (
        lambda: theirs.files.retrieve_metadata(f.id),
        lambda: theirs.files.download(f.id),
        lambda: theirs.files.delete(f.id),
    ):
        with pytest.raises(anthropic.NotFoundError):
            call()
    assert list(theirs.files.list()) == []
    assert theirs.files.list(ids=[f.id]).data == []
    assert mine.files.retrieve_metadata(f.id).id == f.id


def test_both_sdks_share_the_files(server: Server) -> None:
    key = workspace_key(server, "both-dialects")
    ant, oai = client_for(server, api_key=key), openai_client_for(server, api_key=key)
    up = ant.files.upload(file=("input.jsonl", b'{"a": 1}\n'))
    seen = oai.files.retrieve(up.id)
    assert (seen.id, seen.filename, seen.bytes) == (up.id, "input.jsonl", up.size_bytes)
    assert seen.purpose == "user_data" and seen.created_at == int(up.created_at.timestamp())
    assert oai.files.content(up.id).content == b'{"a": 1}\n'

    made = oai.files.create(file=("batch.jsonl", b"{}\n"), purpose="batch")
    meta = ant.files.retrieve_metadata(made.id)
    assert (meta.filename, meta.size_bytes, meta.downloadable) == ("batch.jsonl", 3, True)
    assert ant.files.download(made.id).read() == b"{}\n"
    assert [f.id for f in ant.files.list()] == [made.id, up.id]
    assert ant.files.delete(made.id).type == "file_deleted"
    with pytest.raises(openai.NotFoundError) as gone:
        oai.files.retrieve(made.id)
    assert gone.value.code == "not_found"  # still the OpenAI shape for the OpenAI SDK


def test_upload_limits_and_errors(start_server: ServerFactory) -> None:
    server = start_server("--max-file-bytes", "1000")
    ant, oai = client_for(server), openai_client_for(server)
    with pytest.raises(anthropic.APIStatusError) as big:
        ant.files.upload(file=("big.bin", b"x" * 5000))
    assert big.value.status_code == 413
    assert big.value.body["error"]["type"] == "request_too_large"  # type: ignore[index]
    with pytest.raises(openai.APIStatusError) as oai_big:
        oai.files.create(file=("big.jsonl", b"x" * 5000), purpose="batch")
    assert oai_big.value.status_code == 413 and oai_big.value.code == "request_too_large"
    assert ant.files.upload(file=("ok.bin", b"x" * 1000)).size_bytes == 1000

    with pytest.raises(anthropic.BadRequestError, match="expires_in_seconds"):
        ant.files.upload(file=("e.txt", b"e"), expires_in_seconds=60)
    lasting = ant.files.upload(file=("dir/e.txt", b"e"), expires_in_seconds=3600)
    assert lasting.filename == "e.txt" and lasting.expires_at is not None
    assert (lasting.expires_at - lasting.created_at).total_seconds() == 3600
    with pytest.raises(anthropic.AuthenticationError) as denied:
        ant.with_options(api_key="sk-wrong").files.list()
    assert denied.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
