"""BatchService on the in-memory store with a manual clock: create (the body's checks, the
queue limit, the webhook policy), read, list, cancel, delete and results, with no server."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import msgspec
import pytest

from batchyard.clock import ManualClock, to_datetime
from batchyard.errors import InvalidRequest, NotFound, RateLimited
from batchyard.services import message_batches
from batchyard.services.message_batches import BatchService
from batchyard.services.webhooks import WebhookPolicy
from batchyard.store import MEMORY_URL, open_store
from batchyard.store.layout import RequestState
from batchyard.store.port import Store
from batchyard.store.records import BatchRecord, Outcome

pytestmark = pytest.mark.anyio
HOUR = 3600.0
EXPIRY = 24 * HOUR
RETENTION = 29 * 24 * HOUR


def params(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]} | extra


def body(*custom_ids: str, **extra: Any) -> bytes:
    requests = [{"custom_id": c, "params": params()} for c in custom_ids]
    return msgspec.json.encode({"requests": requests, **extra})


class Calls:
    """What the service's hooks were told."""

    def __init__(self) -> None:
        self.created = 0
        self.ended: list[BatchRecord] = []

    def on_created(self) -> None:
        self.created += 1


@pytest.fixture
def store() -> Store:
    return open_store(MEMORY_URL)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def make(store: Store, clock: ManualClock, calls: Calls) -> Callable[..., BatchService]:
    def build(**options: Any) -> BatchService:
        return BatchService(
            store,
            clock,
            expiry_seconds=EXPIRY,
            retention_seconds=RETENTION,
            on_created=calls.on_created,
            on_ended=calls.ended.append,
            **options,
        )

    return build


@pytest.fixture
def service(make: Callable[..., BatchService]) -> BatchService:
    return make(webhooks=WebhookPolicy(["hooks.example.test"], "secret"))


async def finish(store: Store, clock: ManualClock, n: int, state: RequestState) -> list[str]:
    """Claim up to `n` requests and end them in `state`; their custom_ids."""
    claimed = await store.claim_requests("w", clock.now(), 60, n)
    line = b'{"custom_id":"%s","result":{"type":"%s"}}'
    kind = b"succeeded" if state == RequestState.SUCCEEDED else b"errored"
    outcomes = [
        Outcome(c.key, c.attempts, state, line % (c.custom_id.encode(), kind)) for c in claimed
    ]
    await store.record_outcomes("w", outcomes, clock.now())
    return [c.custom_id for c in claimed]


async def results(service: BatchService, batch_id: str, *, partial: bool = False) -> list[Any]:
    chunks = await service.results("ws", batch_id, partial=partial)
    text = b"".join([chunk async for chunk in chunks])
    return [msgspec.json.decode(line) for line in text.splitlines()]


# --- create -----------------------------------------------------------------------


async def test_create_stores_the_requests_as_sent_and_wakes_the_worker(
    service: BatchService, store: Store, clock: ManualClock, calls: Calls
) -> None:
    raw = b'{"requests":[{"custom_id":"a","params":{"model":"m",  "x":[1]}},{"custom_id":"b","params":{}}]}'
    batch = await service.create("ws", raw, api_key_id="key_1")
    assert batch.id.startswith("msgbatch_") and batch.processing_status == "in_progress"
    assert msgspec.structs.astuple(batch.request_counts) == (2, 0, 0, 0, 0)
    assert batch.created_at == to_datetime(clock.now())
    assert batch.expires_at - batch.created_at == timedelta(seconds=EXPIRY)
    assert (batch.ended_at, batch.cancel_initiated_at, batch.results_url) == (None, None, None)
    assert calls.created == 1
    claimed = await store.claim_requests("w", clock.now(), 60, 10)
    assert [(c.custom_id, c.params) for c in claimed] == [
        ("a", b'{"model":"m",  "x":[1]}'),  # the bytes received, not re-encoded
        ("b", b"{}"),
    ]
    assert await service.retrieve("ws", batch.id) == batch


BAD_BODIES = [
    pytest.param(b"{not json", "Request body is not valid JSON", id="not-json"),
    pytest.param(b"", "Request body is not valid JSON", id="empty-body"),
    pytest.param(b"[]", "Expected `object`, got `array`", id="not-an-object"),
    pytest.param(b"{}", "Object missing required field `requests`", id="no-requests"),
    pytest.param(
        b'{"requests":[]}', "requests: a batch must contain at least one request", id="empty"
    ),
    pytest.param(b'{"requests":"x"}', "requests: Expected `array`", id="requests-not-array"),
    pytest.param(body("a", "b c"), "requests.1.custom_id: Expected `str` matching", id="pattern"),
    pytest.param(body("x" * 65), "requests.0.custom_id", id="custom-id-too-long"),
    pytest.param(
        body("a", "b", "a"),
        "requests.2.custom_id: duplicate custom_id 'a' (also used by requests.0);"
        " custom_id must be unique within a batch",
        id="duplicate",
    ),
    pytest.param(
        b'{"requests":[{"custom_id":"a","params":{}},{"custom_id":"b","params":"hello"}]}',
        "requests.1.params: Input should be an object",
        id="params-not-object",
    ),
    pytest.param(
        b'{"requests":[{"custom_id":"a"}]}',
        "requests.0: Object missing required field `params`",
        id="params-missing",
    ),
    pytest.param(
        b'{"requests":[{"custom_id":"a","params":{},"extra":1}]}',
        "requests.0: Object contains unknown field `extra`",
        id="unknown-field",
    ),
    pytest.param(
        msgspec.json.encode({"requests": [{"custom_id": "a", "params": params(stream=True)}]}),
        "requests.0.params.stream: streaming is not supported in message batches",
        id="stream",
    ),
    pytest.param(
        msgspec.json.encode({"requests": [{"custom_id": "a", "params": params(speed="fast")}]}),
        "requests.0.params.speed: fast mode is not supported in message batches",
        id="speed",
    ),
]


@pytest.mark.parametrize(("raw", "message"), BAD_BODIES)
async def test_a_bad_body_is_refused_whole(
    service: BatchService, store: Store, calls: Calls, raw: bytes, message: str
) -> None:
    with pytest.raises(InvalidRequest) as exc:
        await service.create("ws", raw)
    assert message in exc.value.message
    assert exc.value.param is None  # the path is in the message, as the hosted API words it
    assert await store.open_counts() == (0, 0) and calls.created == 0


async def test_stream_false_is_accepted(service: BatchService) -> None:
    raw = msgspec.json.encode({"requests": [{"custom_id": "a", "params": params(stream=False)}]})
    assert (await service.create("ws", raw)).request_counts.processing == 1


async def test_too_many_requests_names_the_limit(
    service: BatchService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(message_batches, "MAX_REQUESTS", 2)
    await service.create("ws", body("a", "b"))
    with pytest.raises(
        InvalidRequest, match=r"^requests: a batch holds at most 2 requests, got 3$"
    ):
        await service.create("ws", body("a", "b", "c"))


async def test_the_queue_limit_is_a_rate_limit_until_requests_finish(
    service: BatchService, store: Store, clock: ManualClock, calls: Calls
) -> None:
    await service.create("ws", body("a", "b", "c"), queued_limit=5)
    await service.create("other", body("a", "b", "c", "d", "e"), queued_limit=5)  # its own count
    with pytest.raises(RateLimited) as exc:
        await service.create("ws", body("d", "e", "f"), queued_limit=5)
    assert exc.value.retry_after == 60 and exc.value.status_code == 429
    assert exc.value.message == (
        "This batch's 3 requests would put the workspace over its limit of 5 queued batch"
        " requests (3 are still queued); retry when some have finished"
    )
    assert calls.created == 2 and await store.open_counts() == (2, 8)

    await service.create("ws", body("d", "e"), queued_limit=5)  # exactly at the limit
    done = await finish(store, clock, 10, RequestState.SUCCEEDED)
    assert len(done) == 10
    made = await service.create("ws", body("x", "y", "z"), queued_limit=5)
    assert made.request_counts.processing == 3 and calls.created == 4


async def test_a_webhook_url_must_name_an_allowed_host(
    service: BatchService, make: Callable[..., BatchService], store: Store, clock: ManualClock
) -> None:
    for url, message in [
        ("ftp://hooks.example.test/x", "webhook_url: must be an http(s) URL"),
        ("http:///path-only", "webhook_url: must be an http(s) URL"),
        ("http://169.254.169.254/latest", "webhook_url: host '169.254.169.254' is not allowed"),
        ("https://hooks.example.test.evil/x", "is not allowed on this server"),
    ]:
        with pytest.raises(InvalidRequest) as exc:
            await service.create("ws", body("a", webhook_url=url))
        assert message in exc.value.message and exc.value.param == "webhook_url"
    with pytest.raises(InvalidRequest, match="webhooks are off on this server") as off:
        await make().create("ws", body("a", webhook_url="https://hooks.example.test/x"))
    assert off.value.param == "webhook_url"
    assert await store.open_counts() == (0, 0)

    made = await service.create("ws", body("a", webhook_url="https://hooks.example.test/b"))
    await finish(store, clock, 1, RequestState.SUCCEEDED)
    [due] = await store.webhooks.take_due(clock.now(), 60)
    assert (due.batch.id, due.url) == (made.id, "https://hooks.example.test/b")


# --- read and list ----------------------------------------------------------------


async def test_a_batch_is_found_only_in_its_workspace(service: BatchService) -> None:
    made = await service.create("ws", body("a"))
    assert (await service.retrieve("ws", made.id)).id == made.id
    for call in (service.retrieve, service.cancel, service.delete, service.results):
        with pytest.raises(NotFound, match=f"^message_batch '{made.id}' not found$"):
            await call("other", made.id)
    with pytest.raises(NotFound):
        await service.retrieve("ws", "msgbatch_nope")


async def test_list_pages_newest_first_both_ways(service: BatchService) -> None:
    made = [(await service.create("ws", body("a"))).id for _ in range(5)]
    await service.create("other", body("a"))
    newest = made[::-1]
    page = await service.list("ws", 2, None, None)
    assert [b.id for b in page.data] == newest[:2] and page.has_more
    assert (page.first_id, page.last_id) == (newest[0], newest[1])
    page = await service.list("ws", 2, page.last_id, None)
    assert [b.id for b in page.data] == newest[2:4] and page.has_more
    page = await service.list("ws", 2, page.last_id, None)
    assert [b.id for b in page.data] == newest[4:] and not page.has_more
    back = await service.list("ws", 2, None, newest[4])
    assert [b.id for b in back.data] == newest[2:4] and back.has_more
    nothing = await service.list("ws", 2, None, newest[0])
    assert nothing.data == [] and (nothing.first_id, nothing.last_id) == (None, None)


async def test_list_cursor_errors(service: BatchService) -> None:
    made = (await service.create("ws", body("a"))).id
    foreign = (await service.create("other", body("a"))).id
    with pytest.raises(InvalidRequest, match=r"^after_id and before_id cannot both be given$"):
        await service.list("ws", 10, made, made)
    with pytest.raises(InvalidRequest, match=rf"^after_id: no message batch with id '{foreign}'$"):
        await service.list("ws", 10, foreign, None)
    with pytest.raises(InvalidRequest, match=r"^before_id: no message batch with id 'msgbatch_x'$"):
        await service.list("ws", 10, None, "msgbatch_x")


async def test_openai_batches_are_not_listed(service: BatchService) -> None:
    mine = await service.create("ws", body("a"))
    await service.store_batch("ws", ["a"], [b"{}"], dialect="openai")
    page = await service.list("ws", 10, None, None)
    assert [b.id for b in page.data] == [mine.id]


# --- cancel, delete, results --------------------------------------------------------


async def test_cancel_with_a_request_in_flight_waits_for_it(
    service: BatchService, store: Store, clock: ManualClock, calls: Calls
) -> None:
    made = await service.create("ws", body("a", "b", "c"))
    claimed = await store.claim_requests("w", clock.now(), 60, 1)
    clock.advance(5)
    canceling = await service.cancel("ws", made.id)
    assert canceling.processing_status == "canceling"
    assert canceling.cancel_initiated_at == to_datetime(clock.now())
    assert msgspec.structs.astuple(canceling.request_counts) == (1, 0, 0, 2, 0)
    assert canceling.ended_at is None and calls.ended == []

    line = b'{"custom_id":"a","result":{"type":"succeeded"}}'
    outcome = Outcome(claimed[0].key, claimed[0].attempts, RequestState.SUCCEEDED, line)
    clock.advance(1)
    await store.record_outcomes("w", [outcome], clock.now())
    ended = await service.retrieve("ws", made.id)
    assert ended.processing_status == "ended" and ended.ended_at == to_datetime(clock.now())
    assert msgspec.structs.astuple(ended.request_counts) == (0, 1, 0, 2, 0)
    assert ended.results_url == f"/v1/messages/batches/{made.id}/results"
    assert calls.ended == []  # a worker's flush ended it, not this service


async def test_cancel_with_nothing_in_flight_ends_the_batch_at_once(
    service: BatchService, clock: ManualClock, calls: Calls
) -> None:
    made = await service.create("ws", body("a", "b"))
    ended = await service.cancel("ws", made.id)
    assert ended.processing_status == "ended" and ended.ended_at == to_datetime(clock.now())
    assert msgspec.structs.astuple(ended.request_counts) == (0, 0, 0, 2, 0)
    [record] = calls.ended
    assert (record.id, record.canceled, record.outcome) == (made.id, 2, "canceled")

    clock.advance(10)
    again = await service.cancel("ws", made.id)  # nothing changes, nothing is reported
    assert again == ended and len(calls.ended) == 1
    with pytest.raises(NotFound):
        await service.cancel("ws", "msgbatch_nope")


async def test_delete_is_refused_until_the_batch_has_ended(
    service: BatchService, store: Store, clock: ManualClock
) -> None:
    made = await service.create("ws", body("a", "b"))
    with pytest.raises(InvalidRequest, match="is still in_progress; it can be deleted once"):
        await service.delete("ws", made.id)
    await store.claim_requests("w", clock.now(), 60, 1)
    await service.cancel("ws", made.id)
    with pytest.raises(InvalidRequest, match=f"^message_batch '{made.id}' is still canceling"):
        await service.delete("ws", made.id)
    clock.advance(61)
    await store.housekeeping(clock.now())  # the lapsed lease: requeued, then canceled
    assert await service.delete("ws", made.id) == made.id
    with pytest.raises(NotFound):
        await service.retrieve("ws", made.id)
    with pytest.raises(NotFound):
        await service.delete("ws", made.id)


async def test_results_once_ended_or_partial_while_running(
    service: BatchService, store: Store, clock: ManualClock
) -> None:
    made = await service.create("ws", body("a", "b", "c"))
    with pytest.raises(InvalidRequest, match="is still in_progress; results are available once"):
        await service.results("ws", made.id)
    assert await results(service, made.id, partial=True) == []
    await finish(store, clock, 1, RequestState.ERRORED)
    partial = await results(service, made.id, partial=True)
    assert partial == [{"custom_id": "a", "result": {"type": "errored"}}]

    await finish(store, clock, 1, RequestState.SUCCEEDED)
    await service.cancel("ws", made.id)
    assert await results(service, made.id) == [
        {"custom_id": "a", "result": {"type": "errored"}},
        {"custom_id": "b", "result": {"type": "succeeded"}},
        {"custom_id": "c", "result": {"type": "canceled"}},
    ]


async def test_results_are_gone_after_the_retention_period(
    service: BatchService, store: Store, clock: ManualClock
) -> None:
    made = await service.create("ws", body("a"))
    await finish(store, clock, 1, RequestState.SUCCEEDED)
    clock.advance(RETENTION)
    report = await store.housekeeping(clock.now())
    assert report.archived_batches == [made.id]
    batch = await service.retrieve("ws", made.id)
    assert batch.archived_at == to_datetime(clock.now())
    with pytest.raises(NotFound, match="were deleted at the end of the retention period"):
        await service.results("ws", made.id)


async def test_results_url_is_absolute_under_a_public_base_url(
    make: Callable[..., BatchService], store: Store, clock: ManualClock
) -> None:
    service = make(public_base_url="https://batches.example.test/")
    made = await service.create("ws", body("a"))
    assert made.results_url is None
    await finish(store, clock, 1, RequestState.SUCCEEDED)
    ended = await service.retrieve("ws", made.id)
    assert (
        ended.results_url == f"https://batches.example.test/v1/messages/batches/{made.id}/results"
    )
