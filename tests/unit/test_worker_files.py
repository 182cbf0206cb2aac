"""Batch requests naming files: read when they run, in the batch's workspace; a file
gone by then errors that request alone (SQLite and the in-memory store)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from batchyard.clock import ManualClock
from batchyard.config import WorkerSettings
from batchyard.engines.config import ModelConfig
from batchyard.engines.fake.engine import FakeEngine
from batchyard.engines.router import EngineRouter, Route
from batchyard.engines.slots import Priority
from batchyard.services.files import FileService
from batchyard.services.inference import Inference
from batchyard.store import MEMORY_URL, open_store
from batchyard.store.port import Store
from batchyard.store.records import NewBatch
from batchyard.wire.messages import DocumentBlock, Message, MessageCreateParams
from batchyard.worker.worker import Worker
from tests.pdfs import text_pdf
from tests.stubs import MemoryBlobs

pytestmark = pytest.mark.anyio


class Reading(FakeEngine):
    """Keeps the text of each request's documents, as the engine was given them."""

    def __init__(self) -> None:
        super().__init__()
        self.documents: list[str] = []

    async def create_message(
        self, params: MessageCreateParams, *, priority: Priority = Priority.BATCH
    ) -> Message:
        for message in params.messages:
            for block in message.content:
                if isinstance(block, DocumentBlock):
                    self.documents.append(getattr(block.source, "data", "?"))
        return await super().create_message(params, priority=priority)


@pytest.fixture(params=["sqlite", "memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s = open_store(MEMORY_URL if request.param == "memory" else f"sqlite:///{tmp_path}/w.db")
    await s.open()
    yield s
    await s.close()


async def stream(data: bytes) -> AsyncIterator[bytes]:
    yield data


def naming(file_id: str) -> bytes:
    source = {"type": "file", "file_id": file_id}
    content = [{"type": "document", "source": source}, {"type": "text", "text": "Go"}]
    body = {"model": "fake-1", "max_tokens": 50, "messages": [{"role": "user", "content": content}]}
    return msgspec.json.encode(body)


async def test_files_are_read_at_run_time_and_a_deleted_one_errors_alone(store: Store) -> None:
    clock = ManualClock()
    files = FileService(store.files, MemoryBlobs(), clock)
    notes = await files.create("ws", "notes.txt", "user_data", stream(b"kiwi"))
    paper = await files.create("ws", "paper.pdf", "user_data", stream(text_pdf("Mango")))
    gone = await files.create("ws", "gone.txt", "user_data", stream(b"gone"))
    theirs = await files.create("other", "t.txt", "user_data", stream(b"theirs"))
    ids = {"notes": notes.id, "paper": paper.id, "gone": gone.id, "theirs": theirs.id}
    now = clock.now()
    await store.create_batch(
        NewBatch("msgbatch_f", "ws", now, now + 3600, now + 7200),
        list(ids),
        [naming(i) for i in ids.values()],
    )
    await files.delete("ws", gone.id)  # after the batch was accepted, before it runs
    engine = Reading()
    router = EngineRouter([Route(ModelConfig(id="fake-*"), engine)])
    await Worker(store, Inference(router, files), WorkerSettings(), clock=clock).run_until_idle()

    batch = await store.get_batch("ws", "msgbatch_f")
    assert batch is not None
    lines = b"".join([c async for c in store.result_lines(batch)]).splitlines()
    results = {r["custom_id"]: r["result"] for r in map(msgspec.json.decode, lines)}
    assert results["notes"]["type"] == results["paper"]["type"] == "succeeded"
    assert sorted(engine.documents) == ["--- page 1 of 1 ---\nMango", "kiwi"]
    for name in ("gone", "theirs"):
        assert results[name]["type"] == "errored"
        error = results[name]["error"]["error"]
        assert error["type"] == "invalid_request_error"
        assert f"no file {ids[name]!r} in this workspace" in error["message"]
