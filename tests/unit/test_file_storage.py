"""Where file bytes go, on the in-memory store and blob store (a manual clock): the
workspace's storage quota (refused uploads keep nothing), the deletion of expired
files (bytes and records), chunking, and OpenAI output files written as they are made."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from batchyard.clock import ManualClock
from batchyard.errors import RequestTooLarge
from batchyard.services.files import FileService
from batchyard.store import MEMORY_URL, open_store
from batchyard.store.blobs import MemoryBlobs, rechunk
from batchyard.store.records import BatchRecord
from tests.unit.test_files_service import stream
from tests.unit.test_openai_batches_service import World, line

pytestmark = pytest.mark.anyio


async def collect(chunks: AsyncIterator[bytes]) -> list[bytes]:
    return [c async for c in chunks]


def service(quota: int | None = None) -> tuple[FileService, MemoryBlobs, ManualClock]:
    """A FileService on a memory store and memory blobs, with a manual clock."""
    blobs, clock = MemoryBlobs(chunk=4), ManualClock()
    return FileService(open_store(MEMORY_URL).files, blobs, clock, quota_bytes=quota), blobs, clock


async def test_rechunk_gives_pieces_of_exactly_the_size() -> None:
    assert await collect(rechunk(stream(b"ab", b"", b"cdefg", b"h"), 3)) == [b"abc", b"def", b"gh"]
    assert await collect(rechunk(stream(b"abcdef"), 3)) == [b"abc", b"def"]
    assert await collect(rechunk(stream(), 3)) == []


async def test_memory_blobs_size_and_delete() -> None:
    blobs = MemoryBlobs()
    key, size = await blobs.put(stream(b"hello", b" world"))
    assert size == 11 and await blobs.size(key) == 11
    assert b"".join(await collect(blobs.read(key))) == b"hello world"
    await blobs.delete(key)
    await blobs.delete(key)  # a missing key is fine
    assert await blobs.size(key) is None


async def test_an_upload_over_the_quota_is_refused_and_keeps_nothing() -> None:
    files, blobs, _ = service(10)
    first = await files.create("ws", "a", "batch", stream(b"123456"))
    with pytest.raises(RequestTooLarge) as refused:
        await files.create("ws", "b", "batch", stream(b"12", b"34", b"5"))
    assert refused.value.status_code == 413 and refused.value.param == "file"
    assert "quota of 10 bytes (6 in use)" in str(refused.value)
    assert list(blobs.blobs) == [first.blob]
    assert [f.id for f in (await files.list("ws", 10, None, False, None))[0]] == [first.id]
    # Up to the quota exactly is fine; each workspace has its own.
    await files.create("ws", "c", "batch", stream(b"1234"))
    await files.create("other", "d", "batch", stream(b"1234567890"))
    # A batch's output counts, but is never refused.
    made = await files.create("ws", "out", "batch_output", stream(b"xyz"), within_quota=False)
    assert await files.store.workspace_bytes("ws") == 13 and made.bytes == 3
    with pytest.raises(RequestTooLarge):
        await files.create("ws", "e", "batch", stream(b"1"))


async def test_an_upload_stops_as_soon_as_it_passes_the_quota() -> None:
    files, blobs, _ = service(4)
    read: list[bytes] = []

    async def endless() -> AsyncIterator[bytes]:
        while True:
            read.append(b"xx")
            yield b"xx"

    with pytest.raises(RequestTooLarge):
        await files.create("ws", "big", "batch", endless())
    assert len(read) == 3 and blobs.blobs == {}


async def test_the_store_checks_the_quota_again_when_the_record_is_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    files, blobs, _ = service(10)
    await files.create("ws", "a", "batch", stream(b"123456"))

    async def stale(workspace_id: str) -> int:
        return 0  # as if another upload had not finished when this one began

    monkeypatch.setattr(files.store, "workspace_bytes", stale)
    with pytest.raises(RequestTooLarge) as refused:
        await files.create("ws", "b", "batch", stream(b"123456"))
    assert "(6 in use)" in str(refused.value)
    assert len(blobs.blobs) == 1


async def test_no_quota_when_none_is_set() -> None:
    files, blobs, _ = service()
    await files.create("ws", "a", "batch", stream(b"x" * 1000))
    assert len(blobs.blobs) == 1


async def test_expired_files_are_deleted_with_their_bytes() -> None:
    files, blobs, clock = service()
    keep = await files.create("ws", "keep", "batch", stream(b"k"))
    later = await files.create("ws", "later", "batch", stream(b"l"), expires_after=7200)
    soon = [
        await files.create(ws, "soon", "batch", stream(b"s"), expires_after=3600)
        for ws in ("ws", "other")
    ]
    assert await files.delete_expired() == 0
    clock.advance(3600)
    assert await files.delete_expired() == 2
    assert sorted(blobs.blobs) == sorted([keep.blob, later.blob])
    for f in soon:
        assert await files.store.get_file(f.workspace_id, f.id) is None
    assert await files.store.get_file("ws", later.id) == later
    clock.advance(3600)
    assert await files.delete_expired() == 1
    assert list(blobs.blobs) == [keep.blob]
    assert await files.delete_expired() == 0


async def test_more_expired_files_than_a_page_are_all_deleted() -> None:
    files, blobs, clock = service()
    for _ in range(250):
        await files.create("ws", "f", "batch", stream(b"x"), expires_after=10)
    clock.advance(10)
    assert await files.delete_expired() == 250
    assert blobs.blobs == {} and await files.store.workspace_bytes("ws") == 0


class RecordingBlobs(MemoryBlobs):
    """Notes, for each chunk a put receives, how many results pages had been read."""

    def __init__(self, pages: list[int]) -> None:
        super().__init__()
        self.pages = pages
        self.seen: list[int] = []

    async def put(self, chunks: AsyncIterator[bytes]) -> tuple[str, int]:
        async def noted() -> AsyncIterator[bytes]:
            async for chunk in chunks:
                self.seen.append(self.pages[0])
                yield chunk

        return await super().put(noted())


async def test_output_files_are_written_while_the_results_are_read() -> None:
    world = World()
    pages = [0]
    world.files.blobs = world.blobs = blobs = RecordingBlobs(pages)
    prompts = [line(f"r{i}", f"prompt {i}") for i in range(20)]
    batch = await world.create(await world.upload(prompts))
    await world.run()
    store: Any = world.store
    lines = store.result_lines

    async def paged(record: BatchRecord, page_size: int = 2000) -> AsyncIterator[bytes]:
        async for chunk in lines(record, page_size=2):
            pages[0] += 1
            yield chunk

    store.result_lines = paged
    world.service.chunk = 64
    assert await world.service.finalize_ended() == 1
    done = await world.service.retrieve("ws", batch.id)
    assert sorted(await world.jsonl(done.output_file_id)) == sorted(f"r{i}" for i in range(20))
    assert pages[0] == 20 and len(blobs.seen) > 10  # 10 pages, read once for each file
    assert blobs.seen[0] < 3  # the first chunk was stored before the third page was read
