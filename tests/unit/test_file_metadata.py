"""The Anthropic dialect's side of FileService on the in-memory store: metadata
shaping, the `page` cursor, `before_id` pages, `ids` lookups, per-dialect limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from batchyard.clock import ManualClock
from batchyard.errors import InvalidRequest
from batchyard.services.files import (
    ANTHROPIC_MAX_FILE_BYTES,
    MAX_FILE_BYTES,
    FileService,
    after_of,
    anthropic_filename,
    mime_type_of,
    page_token,
    to_metadata,
)
from batchyard.store import MEMORY_URL, open_store
from batchyard.store.records import FileRecord
from tests.stubs import MemoryBlobs

pytestmark = pytest.mark.anyio


async def stream(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def files(clock: ManualClock) -> FileService:
    return FileService(open_store(MEMORY_URL).files, MemoryBlobs(), clock)


async def test_metadata_is_shaped_from_the_record(files: FileService, clock: ManualClock) -> None:
    made = await files.create("ws", "notes.md", "user_data", stream(b"# hi"), expires_after=3600)
    meta = to_metadata(made)
    assert (meta.id, meta.type, meta.filename, meta.size_bytes) == (made.id, "file", "notes.md", 4)
    assert meta.mime_type == "text/markdown" and meta.downloadable is True
    assert meta.created_at == datetime.fromtimestamp(clock.now(), UTC)
    assert meta.expires_at is not None and (meta.expires_at - meta.created_at).seconds == 3600
    assert to_metadata(await files.create("ws", "x", "batch", stream(b""))).expires_at is None


@pytest.mark.parametrize(
    ("name", "mime"),
    [
        ("a.jsonl", "application/jsonl"),
        ("a.txt", "text/plain"),
        ("a.PDF", "application/pdf"),
        ("a.png", "image/png"),
        ("a.csv", "text/csv"),
        ("unnamed", "application/octet-stream"),
        ("a.weird-ext", "application/octet-stream"),
    ],
)
def test_the_mime_type_comes_from_the_name(name: str, mime: str) -> None:
    assert mime_type_of(name) == mime


def test_filenames_keep_their_last_component() -> None:
    assert anthropic_filename("dir/sub/a.txt") == "a.txt"
    assert anthropic_filename("C:\\Users\\a.txt") == "a.txt"
    assert (
        anthropic_filename("") == anthropic_filename(None) == anthropic_filename("d/") == "unnamed"
    )


def test_page_cursors_round_trip() -> None:
    assert after_of(page_token("file-abc")) == "file-abc"
    for bad in ("file-abc", "page_", ""):
        with pytest.raises(InvalidRequest) as exc:
            after_of(bad)
        assert exc.value.param == "page"


async def test_before_id_pages_and_unknown_cursors(files: FileService) -> None:
    made: list[FileRecord] = [
        await files.create("ws", f"f{i}", "user_data", stream(b"x")) for i in range(5)
    ]
    newest = [f.id for f in made[::-1]]
    page, more = await files.list("ws", 2, None, False, None, newest[4])
    assert [f.id for f in page] == newest[2:4] and more  # the two newer ones, newest first
    page, more = await files.list("ws", 2, None, False, None, newest[1])
    assert [f.id for f in page] == newest[:1] and not more
    with pytest.raises(InvalidRequest) as exc:
        await files.list("ws", 2, "file-nope", False, None, after_param="page")
    assert exc.value.param == "page"
    with pytest.raises(InvalidRequest) as exc:
        await files.list("other", 2, None, False, None, newest[0])  # another workspace's id
    assert exc.value.param == "before_id"


async def test_some_finds_only_this_workspaces_live_files(
    files: FileService, clock: ManualClock
) -> None:
    a = await files.create("ws", "a", "user_data", stream(b"a"))
    clock.advance(1)
    b = await files.create("ws", "b", "user_data", stream(b"b"), expires_after=10)
    other = await files.create("elsewhere", "c", "user_data", stream(b"c"))
    assert await files.some("ws", [a.id, other.id, b.id, a.id, "file-nope"]) == [b, a]
    clock.advance(10)
    assert await files.some("ws", [a.id, b.id]) == [a]


def test_limits_per_dialect_and_the_operators_cap(files: FileService) -> None:
    assert files.limit("anthropic") == ANTHROPIC_MAX_FILE_BYTES == 500 * 2**20
    assert files.limit("openai") == MAX_FILE_BYTES == 512 * 2**20
    files.max_bytes = 1000
    assert files.limit("anthropic") == files.limit("openai") == 1000
