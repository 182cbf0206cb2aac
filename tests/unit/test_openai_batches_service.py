"""OpenAIBatchService on the in-memory store and blob store, a manual clock and the fake
engine: an uploaded input file becomes a running batch (or a failed one naming its bad
lines); retrieve, list and cancel; and finalize_ended writes the output and error files."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from batchyard.clock import ManualClock
from batchyard.config import WorkerSettings
from batchyard.engines.config import ModelConfig
from batchyard.engines.fake.engine import FakeEngine
from batchyard.engines.router import EngineRouter, Route
from batchyard.errors import InvalidRequest, NotFound, RateLimited
from batchyard.services.files import FileService
from batchyard.services.inference import Inference
from batchyard.services.message_batches import BatchService
from batchyard.services.openai_batch_input import MAX_INPUT_BYTES
from batchyard.services.openai_batches import OpenAIBatchService
from batchyard.store import MEMORY_URL, open_store
from batchyard.store.port import Store
from batchyard.store.records import FileRecord
from batchyard.translate.envelope import unwrap_chat_body
from batchyard.wire.openai import Batch, BatchCreateIn, BatchError
from batchyard.worker.worker import Worker
from tests.stubs import MemoryBlobs

pytestmark = pytest.mark.anyio
DAY = 86400.0
CHAT = "/v1/chat/completions"


def line(custom_id: str, content: str = "hello", **overrides: Any) -> dict[str, Any]:
    chat = {"model": "fake-1", "max_tokens": 40, "messages": [{"role": "user", "content": content}]}
    return {"custom_id": custom_id, "method": "POST", "url": CHAT, "body": chat} | overrides


class World:
    """The services on one memory store, and the fake engine's worker to run batches."""

    def __init__(self) -> None:
        self.clock = ManualClock()
        self.store: Store = open_store(MEMORY_URL)
        self.blobs = MemoryBlobs(chunk=7)  # lines arrive split across reads
        self.created = 0
        self.batches = BatchService(
            self.store,
            self.clock,
            expiry_seconds=DAY,
            retention_seconds=29 * DAY,
            on_created=self.count_created,
        )
        self.files = FileService(self.store.files, self.blobs, self.clock)
        self.service = OpenAIBatchService(self.batches, self.files)

    def count_created(self) -> None:
        self.created += 1

    async def upload(
        self, lines: list[Any], workspace_id: str = "ws", purpose: str = "batch"
    ) -> str:
        text = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)

        async def chunks() -> AsyncIterator[bytes]:
            yield text.encode()

        return (await self.files.create(workspace_id, "input.jsonl", purpose, chunks())).id

    async def create(
        self, file_id: str, endpoint: str = CHAT, workspace_id: str = "ws", **options: Any
    ) -> Batch:
        body = BatchCreateIn(input_file_id=file_id, endpoint=endpoint, completion_window="24h")
        return await self.service.create(workspace_id, msgspec.structs.replace(body, **options))

    async def run(self) -> None:
        """Run every queued request on the fake engine (models `fake-*`), to the end."""
        router = EngineRouter([Route(ModelConfig(id="fake-*"), FakeEngine())])
        await Worker(
            self.store, Inference(router, None), WorkerSettings(), clock=self.clock
        ).run_until_idle()

    async def jsonl(self, file_id: str | None, workspace_id: str = "ws") -> dict[str, Any]:
        assert file_id is not None
        chunks = await self.files.content(workspace_id, file_id)
        text = b"".join([c async for c in chunks])
        assert text.endswith(b"\n")
        entries = [msgspec.json.decode(x) for x in text.splitlines()]
        return {x["custom_id"]: x for x in entries}


@pytest.fixture
def world() -> World:
    return World()


# --- create -----------------------------------------------------------------------


async def test_a_valid_file_becomes_a_running_batch(world: World) -> None:
    file_id = await world.upload([line("a", "one"), "", line("b", "two")])  # blank lines skipped
    batch = await world.create(file_id, metadata={"project": "x"})
    assert batch.id.startswith("batch_") and batch.status == "in_progress"
    assert (batch.endpoint, batch.input_file_id, batch.completion_window) == (CHAT, file_id, "24h")
    assert batch.metadata == {"project": "x"} and batch.errors is None
    assert batch.created_at == int(world.clock.now()) == batch.in_progress_at
    assert batch.expires_at == int(world.clock.now() + DAY)
    assert batch.request_counts is not None
    assert msgspec.structs.astuple(batch.request_counts) == (2, 0, 0)
    assert (batch.output_file_id, batch.error_file_id, batch.completed_at) == (None, None, None)
    assert world.created == 1

    found = await world.store.openai_batches.get("ws", batch.id)
    assert found is not None
    record, running = found
    assert running is not None and record.batch_id == running.id and running.total == 2
    # The Messages batch behind it is not one of the Anthropic dialect's.
    assert (await world.batches.list("ws", 10, None, None)).data == []
    claimed = await world.store.claim_requests("w", world.clock.now(), 60, 10)
    bodies = {c.custom_id: unwrap_chat_body(c.params) for c in claimed}
    assert bodies == {"a": line("a", "one")["body"], "b": line("b", "two")["body"]}


BAD_LINES = [
    pytest.param("{not json", "invalid_json_line", None, id="not-json"),
    pytest.param(
        {"method": "POST", "url": CHAT, "body": {}},
        "missing_required_parameter",
        "custom_id",
        id="no-custom-id",
    ),
    pytest.param(line("dup"), "duplicate_custom_id", None, id="duplicate"),
    pytest.param(line("get", method="GET"), "invalid_method", "method", id="method"),
    pytest.param(line("url", url="/v1/embeddings"), "invalid_url", "url", id="url"),
    pytest.param(
        line("body", body={"model": "fake-1", "messages": []}),
        "invalid_request",
        "body.messages",
        id="empty-messages",
    ),
    pytest.param(
        line("stream", body={**line("s")["body"], "stream": True}),
        "invalid_request",
        "body.stream",
        id="stream",
    ),
    pytest.param(line('has"quote'), "invalid_custom_id", "custom_id", id="custom-id"),
]


@pytest.mark.parametrize(("bad", "code", "param"), BAD_LINES)
async def test_a_bad_line_fails_the_batch_naming_it(
    world: World, bad: Any, code: str, param: str | None
) -> None:
    file_id = await world.upload([line("dup"), bad, line("ok")])
    batch = await world.create(file_id)
    assert batch.status == "failed" and batch.failed_at == int(world.clock.now())
    assert batch.errors is not None
    [error] = batch.errors.data
    assert (error.code, error.line, error.param) == (code, 2, param)
    assert batch.request_counts is None and batch.in_progress_at is None
    assert await world.store.open_counts() == (0, 0) and world.created == 0
    assert await world.service.retrieve("ws", batch.id) == batch


async def test_every_bad_line_is_named(world: World) -> None:
    file_id = await world.upload([line("a", method="GET"), line("b"), "[]", line("a")])
    batch = await world.create(file_id)
    assert batch.errors is not None
    assert [(e.code, e.line) for e in batch.errors.data] == [
        ("invalid_method", 1),
        ("invalid_request", 3),
        ("duplicate_custom_id", 4),
    ]


async def test_an_empty_file_fails(world: World) -> None:
    batch = await world.create(await world.upload(["", "  "]))
    assert batch.status == "failed" and batch.errors is not None
    assert batch.errors.data == [BatchError("empty_file", "The input file holds no requests")]


async def test_create_checks_its_own_fields_and_the_input_file(world: World) -> None:
    good = await world.upload([line("a")])
    output = await world.upload([line("a")], purpose="batch_output")
    foreign = await world.upload([line("a")], workspace_id="other")
    huge = FileRecord(
        "file-huge", "ws", "big.jsonl", "batch", MAX_INPUT_BYTES + 1, 0.0, None, "blob"
    )
    await world.store.files.create_file(huge)
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"completion_window": "1h"}, "completion_window", "only 24h is supported"),
        ({"endpoint": "/v1/completions"}, "endpoint", "must be one of /v1/chat/completions"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", "at most 16 pairs"),
        ({"metadata": {"k" * 65: "v"}}, "metadata", "keys up to 64 characters"),
        ({"metadata": {"k": "v" * 513}}, "metadata", "values up to 512"),
        ({"input_file_id": "file-nope"}, "input_file_id", "no file 'file-nope'"),
        ({"input_file_id": foreign}, "input_file_id", f"no file {foreign!r}"),
        ({"input_file_id": output}, "input_file_id", "must be uploaded with purpose batch"),
        ({"input_file_id": "file-huge"}, "input_file_id", "hold at most 209,715,200 bytes"),
    ]
    for options, param, message in cases:
        with pytest.raises(InvalidRequest) as exc:
            await world.create(good, **options)
        assert (exc.value.param, message in exc.value.message) == (param, True), options
    assert (await world.service.page("ws", 10, None)) == ([], False)
    ok = await world.create(good, metadata={f"k{i}": "v" * 512 for i in range(16)})
    assert ok.status == "in_progress"


async def test_the_queue_limit_applies(world: World) -> None:
    file_id = await world.upload([line("a"), line("b")])
    await world.service.create("ws", BatchCreateIn(file_id, CHAT, "24h"), queued_limit=3)
    with pytest.raises(RateLimited):
        await world.service.create("ws", BatchCreateIn(file_id, CHAT, "24h"), queued_limit=3)
    assert len((await world.service.page("ws", 10, None))[0]) == 1


# --- retrieve, list, cancel ---------------------------------------------------------


async def test_retrieve_list_and_cancel_stay_in_their_workspace(world: World) -> None:
    file_id = await world.upload([line("a")])
    made = [(await world.create(file_id)).id for _ in range(3)]
    failed = (await world.create(await world.upload(["{"]))).id
    newest = [failed, *made[::-1]]
    page, more = await world.service.page("ws", 2, None)
    assert [b.id for b in page] == newest[:2] and more
    page, more = await world.service.page("ws", 2, newest[1])
    assert [b.id for b in page] == newest[2:] and not more
    assert [b.status for b in page] == ["in_progress", "in_progress"]

    for call in (world.service.retrieve, world.service.cancel):
        with pytest.raises(NotFound) as exc:
            await call("other", made[0])
        assert exc.value.param == "batch_id"
        assert exc.value.message == f"No batch found with id '{made[0]}'"
    assert await world.service.page("other", 10, None) == ([], False)
    with pytest.raises(InvalidRequest) as cursor:
        await world.service.page("other", 10, made[0])
    assert cursor.value.param == "after"


async def test_cancel_a_running_batch_then_finalize_it(world: World) -> None:
    batch = await world.create(await world.upload([line(f"c{i}") for i in range(3)]))
    held = await world.store.claim_requests("w", world.clock.now(), 60, 1)
    world.clock.advance(5)
    cancelling = await world.service.cancel("ws", batch.id)
    assert cancelling.status == "cancelling"
    assert cancelling.cancelling_at == int(world.clock.now())
    assert cancelling.request_counts is not None
    assert msgspec.structs.astuple(cancelling.request_counts) == (3, 0, 2)

    world.clock.advance(61)  # the held request's lease lapses; housekeeping cancels it
    await world.store.housekeeping(world.clock.now())
    assert held and (await world.service.retrieve("ws", batch.id)).status == "cancelling"
    assert await world.service.finalize_ended() == 1
    done = await world.service.retrieve("ws", batch.id)
    assert done.status == "cancelled" and done.cancelled_at == int(world.clock.now())
    assert done.output_file_id is None and done.completed_at is None
    errors = await world.jsonl(done.error_file_id)
    assert sorted(errors) == ["c0", "c1", "c2"]
    assert {e["error"]["code"] for e in errors.values()} == {"batch_cancelled"}
    assert all(e["response"] is None for e in errors.values())


async def test_cancel_a_failed_batch_changes_nothing(world: World) -> None:
    failed = await world.create(await world.upload(["{"]))
    assert await world.service.cancel("ws", failed.id) == failed


# --- finalize ----------------------------------------------------------------------


async def test_finalize_writes_the_output_and_error_files_once(world: World) -> None:
    unserved = line(
        "c", body={"model": "not-served", "messages": [{"role": "user", "content": "x"}]}
    )
    batch = await world.create(
        await world.upload([line("a", "first prompt"), line("b", "second prompt"), unserved])
    )
    assert await world.service.finalize_ended() == 0  # nothing has ended
    await world.run()
    finalizing = await world.service.retrieve("ws", batch.id)
    assert finalizing.status == "finalizing" and finalizing.output_file_id is None
    assert finalizing.finalizing_at == int(world.clock.now())

    world.clock.advance(2)
    assert await world.service.finalize_ended() == 1
    done = await world.service.retrieve("ws", batch.id)
    assert done.status == "completed" and done.completed_at == int(world.clock.now())
    assert done.request_counts is not None
    assert msgspec.structs.astuple(done.request_counts) == (3, 2, 1)

    out = await world.jsonl(done.output_file_id)
    assert sorted(out) == ["a", "b"]
    for custom_id, prompt in (("a", "first prompt"), ("b", "second prompt")):
        entry = out[custom_id]
        assert entry["id"].startswith("batch_req_") and entry["error"] is None
        response = entry["response"]
        assert response["status_code"] == 200 and response["request_id"].startswith("req_")
        completion = response["body"]
        assert completion["object"] == "chat.completion" and completion["model"] == "fake-1"
        assert completion["choices"][0]["message"]["content"].endswith(f"to: {prompt}")
        assert completion["usage"]["completion_tokens"] > 0
    errors = await world.jsonl(done.error_file_id)
    [(custom_id, entry)] = errors.items()
    assert custom_id == "c" and entry["error"] is None
    assert entry["response"]["status_code"] == 400
    error = entry["response"]["body"]["error"]
    assert error == {
        "message": "model: 'not-served' is not served here",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }

    for file_id, kind in ((done.output_file_id, "output"), (done.error_file_id, "error")):
        assert file_id is not None
        made = await world.files.get("ws", file_id)
        assert (made.purpose, made.filename) == ("batch_output", f"{batch.id}_{kind}.jsonl")
    before = dict(world.blobs.blobs)
    world.clock.advance(60)
    assert await world.service.finalize_ended() == 0  # a second finalize does nothing
    assert world.blobs.blobs == before
    assert await world.service.retrieve("ws", batch.id) == done


async def test_embeddings_each_end_in_the_error_file(world: World) -> None:
    lines = [
        {"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings",
         "body": {"model": "text-embedding-3-small", "input": f"text {i}"}}
        for i in range(2)
    ]  # fmt: skip
    batch = await world.create(await world.upload(lines), endpoint="/v1/embeddings")
    assert batch.status == "in_progress"
    await world.run()
    assert await world.service.finalize_ended() == 1
    done = await world.service.retrieve("ws", batch.id)
    assert done.status == "completed" and done.output_file_id is None
    errors = await world.jsonl(done.error_file_id)
    assert sorted(errors) == ["e0", "e1"]
    for entry in errors.values():
        assert entry["response"]["status_code"] == 400
        assert "no engine here computes embeddings" in entry["response"]["body"]["error"]["message"]


async def test_an_expired_batch_ends_expired(world: World) -> None:
    batch = await world.create(await world.upload([line("a"), line("b")]))
    world.clock.advance(DAY)
    await world.store.housekeeping(world.clock.now())
    assert await world.service.finalize_ended() == 1
    done = await world.service.retrieve("ws", batch.id)
    assert done.status == "expired" and done.expired_at == int(world.clock.now())
    assert done.completed_at is None and done.output_file_id is None
    errors = await world.jsonl(done.error_file_id)
    assert {k: e["error"]["code"] for k, e in errors.items()} == {
        "a": "batch_expired",
        "b": "batch_expired",
    }


async def test_a_finalize_that_loses_the_race_deletes_its_files(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = await world.create(await world.upload([line("a")]))
    await world.run()
    store = world.store.openai_batches
    finalize = store.finalize

    async def another_worker_first(
        openai_id: str, output: str | None, errors: str | None, now: float
    ) -> bool:
        assert await finalize(openai_id, "file-theirs", None, now)
        return await finalize(openai_id, output, errors, now)

    monkeypatch.setattr(store, "finalize", another_worker_first)
    assert await world.service.finalize_ended() == 0
    done = await world.service.retrieve("ws", batch.id)
    assert (done.status, done.output_file_id) == ("completed", "file-theirs")
    assert await world.files.list("ws", 10, None, False, "batch_output") == ([], False)
    assert len(world.blobs.blobs) == 1  # the input file's bytes only
