"""FileService on the in-memory store and blob store: uploads streamed to the blobs,
reads, pages, expiry and deletes, each scoped to its workspace (a manual clock)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from batchyard import ids
from batchyard.clock import ManualClock
from batchyard.errors import InvalidRequest, NotFound
from batchyard.services.files import FileService
from batchyard.store import MEMORY_URL, open_store
from batchyard.store.records import FileRecord
from tests.stubs import MemoryBlobs

pytestmark = pytest.mark.anyio


async def stream(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def blobs() -> MemoryBlobs:
    return MemoryBlobs(chunk=4)


@pytest.fixture
def files(clock: ManualClock, blobs: MemoryBlobs) -> FileService:
    return FileService(open_store(MEMORY_URL).files, blobs, clock)


async def content(files: FileService, workspace_id: str, file_id: str) -> bytes:
    return b"".join([chunk async for chunk in await files.content(workspace_id, file_id)])


async def upload(files: FileService, workspace_id: str, name: str, purpose: str) -> FileRecord:
    return await files.create(workspace_id, name, purpose, stream(name.encode()))


async def test_an_upload_is_stored_whole_and_read_back(
    files: FileService, blobs: MemoryBlobs, clock: ManualClock
) -> None:
    made = await files.create(
        "ws", "in.jsonl", "batch", stream(b'{"a":1}\n', b"", "ø\n".encode(), b"tail")
    )
    assert made.id.startswith("file-") and made.bytes == 8 + 3 + 4  # bytes, not characters
    assert (made.filename, made.purpose, made.created_at) == ("in.jsonl", "batch", clock.now())
    assert made.expires_at is None
    assert blobs.blobs == {made.blob: '{"a":1}\nø\ntail'.encode()}
    assert await files.get("ws", made.id) == made
    assert await content(files, "ws", made.id) == '{"a":1}\nø\ntail'.encode()


async def test_an_empty_upload_is_a_file_of_zero_bytes(files: FileService) -> None:
    made = await files.create("ws", "empty.jsonl", "batch", stream())
    assert made.bytes == 0
    assert await content(files, "ws", made.id) == b""


async def test_a_file_is_seen_only_in_its_workspace(files: FileService, blobs: MemoryBlobs) -> None:
    made = await upload(files, "ws_a", "a.jsonl", "batch")
    for call in (files.get, files.content, files.delete):
        with pytest.raises(NotFound) as exc:
            await call("ws_b", made.id)
        assert (exc.value.message, exc.value.param) == (
            f"No such File object: {made.id}",
            "file_id",
        )
    assert await files.list("ws_b", 10, None, False, None) == ([], False)
    assert made.blob in blobs.blobs  # the other workspace's delete touched nothing
    assert await files.get("ws_a", made.id) == made


async def test_a_file_past_its_expiry_is_gone(files: FileService, clock: ManualClock) -> None:
    made = await files.create("ws", "out.jsonl", "batch_output", stream(b"x"), expires_after=60)
    assert made.expires_at == clock.now() + 60
    clock.advance(59.5)
    assert await files.get("ws", made.id) == made
    clock.advance(0.5)  # expires_at itself is past
    with pytest.raises(NotFound):
        await files.get("ws", made.id)
    with pytest.raises(NotFound):
        await files.content("ws", made.id)


async def test_list_pages_newest_first_or_oldest_first_and_by_purpose(files: FileService) -> None:
    made = [
        await upload(files, "ws", f"f{i}.jsonl", "batch" if i % 2 == 0 else "batch_output")
        for i in range(5)
    ]
    await upload(files, "elsewhere", "x.jsonl", "batch")
    newest = [f.id for f in made[::-1]]

    page, more = await files.list("ws", 2, None, False, None)
    assert [f.id for f in page] == newest[:2] and more
    page, more = await files.list("ws", 2, newest[1], False, None)
    assert [f.id for f in page] == newest[2:4] and more
    page, more = await files.list("ws", 2, newest[3], False, None)
    assert [f.id for f in page] == newest[4:] and not more

    page, more = await files.list("ws", 3, None, True, None)
    assert [f.id for f in page] == [f.id for f in made[:3]] and more
    page, more = await files.list("ws", 3, made[2].id, True, None)
    assert [f.id for f in page] == [f.id for f in made[3:]] and not more

    page, more = await files.list("ws", 10, None, False, "batch")
    assert [f.id for f in page] == [made[4].id, made[2].id, made[0].id] and not more
    page, more = await files.list("ws", 10, None, True, "batch_output")
    assert [f.id for f in page] == [made[1].id, made[3].id] and not more


async def test_an_unknown_cursor_is_a_request_error(files: FileService) -> None:
    foreign = await upload(files, "elsewhere", "x.jsonl", "batch")
    for after in ("file-nope", foreign.id):
        with pytest.raises(InvalidRequest) as exc:
            await files.list("ws", 10, after, False, None)
        assert (exc.value.message, exc.value.param) == (
            f"after: no file with id {after!r}",
            "after",
        )


async def test_delete_drops_the_record_and_its_bytes(
    files: FileService, blobs: MemoryBlobs
) -> None:
    kept = await upload(files, "ws", "kept.jsonl", "batch")
    gone = await upload(files, "ws", "gone.jsonl", "batch")
    assert await files.delete("ws", gone.id) == gone
    assert set(blobs.blobs) == {kept.blob}
    with pytest.raises(NotFound):
        await files.get("ws", gone.id)
    with pytest.raises(NotFound):
        await files.delete("ws", gone.id)
    assert [f.id for f in (await files.list("ws", 10, None, False, None))[0]] == [kept.id]


async def test_an_upload_whose_record_cannot_be_written_leaves_no_bytes(
    files: FileService, blobs: MemoryBlobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ids, "file_id", lambda: "file-taken")
    first = await upload(files, "ws", "first.jsonl", "batch")
    with pytest.raises(ValueError, match="file-taken"):  # the store refuses a taken id
        await upload(files, "ws", "second.jsonl", "batch")
    assert set(blobs.blobs) == {first.blob}
    assert await content(files, "ws", "file-taken") == b"first.jsonl"


async def test_an_upload_that_breaks_off_leaves_no_record(
    files: FileService, blobs: MemoryBlobs
) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"part"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await files.create("ws", "x.jsonl", "batch", broken())
    assert blobs.blobs == {}
    assert await files.list("ws", 10, None, False, None) == ([], False)
