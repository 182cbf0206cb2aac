"""WebhookSender.deliver_due on the in-memory store with a manual clock and httpx's
MockTransport: a signed event per ended batch, delivered once; failures retried with
backoff until MAX_ATTEMPTS; hosts the policy does not allow never called."""

from __future__ import annotations

import time

import httpx
import msgspec
import pytest

from batchyard.clock import ManualClock
from batchyard.services.message_batches import BatchService
from batchyard.services.webhooks import (
    MAX_ATTEMPTS,
    SIGNATURE_HEADER,
    WebhookPolicy,
    WebhookSender,
    sign,
    verify,
)
from batchyard.store import MEMORY_URL, open_store
from batchyard.store.layout import RequestState
from batchyard.store.port import Store
from batchyard.store.records import NewBatch, Outcome

pytestmark = pytest.mark.anyio
SECRET = "webhook-secret-for-tests"
HOOK = "https://hooks.example.test/batches"


class Receiver:
    """Answers each POST with the next of `statuses` (the last one from then on), or
    raises `error`; keeps every request."""

    def __init__(self, *statuses: int, error: Exception | None = None) -> None:
        self.statuses = list(statuses) or [200]
        self.error = error
        self.received: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.received.append(request)
        if self.error is not None:
            raise self.error
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        headers = {"location": HOOK} if 300 <= status < 400 else {}
        return httpx.Response(status, headers=headers)


class Hooks:
    """A memory store, a clock that reads the real time once (a receiver's `verify`
    checks the timestamp against it), and a sender with its receiver."""

    def __init__(self, receiver: Receiver, hosts: list[str], secret: str | None) -> None:
        self.clock = ManualClock(time.time())
        self.store: Store = open_store(MEMORY_URL)
        self.receiver = receiver
        self.batches = BatchService(
            self.store, self.clock, expiry_seconds=3600, retention_seconds=7200
        )
        self.sender = WebhookSender(
            self.store.webhooks,
            WebhookPolicy(hosts, secret),
            self.batches.to_wire,
            now=self.clock.now,
            transport=httpx.MockTransport(receiver),
        )
        self.n = 0

    async def batch(self, url: str | None = HOOK, *, end: bool = True) -> str:
        """A batch of two requests with this webhook_url, ended (both succeeded) if `end`."""
        self.n += 1
        now = self.clock.now()
        new = NewBatch(f"msgbatch_{self.n}", "ws", now, now + 3600, now + 7200, webhook_url=url)
        await self.store.create_batch(new, ["a", "b"], [b"{}", b"{}"])
        if end:
            claimed = await self.store.claim_requests("w", now, 60, 10)
            line = b'{"custom_id":"x","result":{"type":"succeeded"}}'
            done = [Outcome(c.key, c.attempts, RequestState.SUCCEEDED, line) for c in claimed]
            await self.store.record_outcomes("w", done, now)
        return new.id

    async def after(self, seconds: float) -> int:
        """Let `seconds` pass, then deliver what is due."""
        self.clock.advance(seconds)
        return await self.sender.deliver_due()


def hooks(*statuses: int, error: Exception | None = None, secret: str | None = SECRET) -> Hooks:
    return Hooks(Receiver(*statuses, error=error), ["hooks.example.test"], secret)


async def test_an_ended_batch_is_delivered_once_signed() -> None:
    h = hooks(200)
    batch_id = await h.batch()
    await h.batch(None)  # no webhook_url
    await h.batch(end=False)  # still running
    assert await h.sender.deliver_due() == 1
    [request] = h.receiver.received
    assert (request.method, str(request.url)) == ("POST", HOOK)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "batchyard-webhooks"
    body = request.content
    signature = request.headers[SIGNATURE_HEADER]
    assert signature == sign(SECRET, int(h.clock.now()), body)
    assert verify(SECRET, signature, body)
    assert not verify("another-secret", signature, body)
    assert not verify(SECRET, signature, body + b" ")

    event = msgspec.json.decode(body)
    assert event["type"] == "message_batch.ended" and event["id"].startswith("evt_")
    record = await h.batches.get("ws", batch_id)
    assert event["id"] == "evt_" + batch_id.removeprefix("msgbatch_")
    assert record.ended_at is not None and event["created_at"] == int(record.ended_at)
    wire = msgspec.to_builtins(await h.batches.retrieve("ws", batch_id))
    assert event["data"] == wire and event["data"]["processing_status"] == "ended"
    assert event["data"]["request_counts"]["succeeded"] == 2

    for wait in (0, 60, 3600, 86400):
        assert await h.after(wait) == 0
    assert len(h.receiver.received) == 1


async def test_without_a_secret_nothing_is_signed() -> None:
    h = hooks(200, secret=None)
    await h.batch()
    assert await h.sender.deliver_due() == 1
    assert SIGNATURE_HEADER not in h.receiver.received[0].headers


async def test_a_stale_signature_does_not_verify() -> None:
    body = b'{"type":"message_batch.ended"}'
    old = sign(SECRET, int(time.time()) - 301, body)
    assert not verify(SECRET, old, body)
    assert verify(SECRET, old, body, tolerance=600)
    assert not verify(SECRET, "v1=abc", body)  # no timestamp


async def test_a_failed_delivery_backs_off_then_succeeds() -> None:
    h = hooks(500, 503, 204)
    await h.batch()
    assert await h.sender.deliver_due() == 0  # attempt 1: 500; next after 2 s
    assert await h.after(0) == 0 and len(h.receiver.received) == 1
    assert await h.after(1.9) == 0 and len(h.receiver.received) == 1
    assert await h.after(0.1) == 0 and len(h.receiver.received) == 2  # attempt 2: 503; 4 s
    assert await h.after(3.9) == 0 and len(h.receiver.received) == 2
    assert await h.after(0.1) == 1 and len(h.receiver.received) == 3  # attempt 3: 204
    assert await h.after(3600) == 0 and len(h.receiver.received) == 3
    last = h.receiver.received[-1]
    assert verify(SECRET, last.headers[SIGNATURE_HEADER], last.content)  # signed when sent
    events = [msgspec.json.decode(r.content) for r in h.receiver.received]
    # One event, sent three times: a receiver that saw it already can tell.
    assert len({(e["id"], e["created_at"]) for e in events}) == 1


async def test_a_network_error_is_a_failed_attempt() -> None:
    h = hooks(error=httpx.ConnectError("connection refused"))
    await h.batch()
    assert await h.sender.deliver_due() == 0
    assert await h.after(2) == 0
    assert len(h.receiver.received) == 2
    h.receiver.error = None
    assert await h.after(4) == 1 and len(h.receiver.received) == 3


async def test_a_redirect_is_not_followed() -> None:
    h = hooks(302, 200)
    await h.batch()
    assert await h.sender.deliver_due() == 0  # a 3xx is a failure, and not followed
    assert len(h.receiver.received) == 1
    assert await h.after(2) == 1 and len(h.receiver.received) == 2


async def test_delivery_gives_up_after_max_attempts() -> None:
    h = hooks(500)
    await h.batch()
    assert await h.sender.deliver_due() == 0
    for _ in range(MAX_ATTEMPTS + 3):
        assert await h.after(3600) == 0  # the longest backoff is an hour
    assert len(h.receiver.received) == MAX_ATTEMPTS
    assert await h.store.webhooks.take_due(h.clock.now() + 10 * 86400, 60) == []


async def test_the_backoff_doubles_up_to_an_hour() -> None:
    h = hooks(500)
    await h.batch()
    await h.sender.deliver_due()
    for attempt in range(1, MAX_ATTEMPTS):
        wait = min(3600, 2**attempt)
        assert await h.after(wait - 0.5) == 0
        assert len(h.receiver.received) == attempt, f"attempt {attempt + 1} came early"
        await h.after(0.5)
        assert len(h.receiver.received) == attempt + 1


async def test_a_host_no_longer_allowed_is_never_called() -> None:
    h = hooks(200)
    await h.batch("http://169.254.169.254/latest/meta-data")  # stored before the policy changed
    allowed = await h.batch()
    assert await h.sender.deliver_due() == 1
    assert [str(r.url) for r in h.receiver.received] == [HOOK]
    assert msgspec.json.decode(h.receiver.received[0].content)["data"]["id"] == allowed
    for _ in range(MAX_ATTEMPTS + 2):
        assert await h.after(3600) == 0
    assert len(h.receiver.received) == 1
    assert await h.store.webhooks.take_due(h.clock.now() + 86400, 60) == []  # given up


async def test_with_no_hosts_allowed_nothing_is_called() -> None:
    h = Hooks(Receiver(200), [], SECRET)
    await h.batch()
    assert await h.sender.deliver_due() == 0
    assert h.receiver.received == []


async def test_an_unexpected_error_is_that_webhooks_failed_attempt_only() -> None:
    """A URL stored before it was checked (or any error of any kind) fails on its own."""

    class Picky(Receiver):
        def __call__(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == "/boom":
                self.received.append(request)
                raise RuntimeError("not an httpx error")
            return super().__call__(request)

    receiver = Picky(200)
    h = Hooks(receiver, ["hooks.example.test"], SECRET)
    await h.batch("https://hooks.example.test/boom")
    await h.batch(HOOK)
    assert await h.sender.deliver_due() == 1  # the good one is delivered beside it
    assert sorted(r.url.path for r in receiver.received) == ["/batches", "/boom"]
    assert await h.after(2) == 0  # the bad one is retried on its own schedule
    assert [r.url.path for r in receiver.received][-1] == "/boom"


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.test:abc/x",
        "http://hooks.example.test/a\rb",
        "http://hooks.example.test/a\x00b",
        "http://hooks.example.test/a b",
        "http://hooks.example.test/" + "a" * 3000,
        "http://hooks.example.test\uff20evil.example/",
        "http://[::1/",
        "http://user@hooks.example.test/",
        "ftp://hooks.example.test/",
        "http://hooks.example.test:70000/",
    ],
)
def test_a_url_the_client_would_read_otherwise_is_refused(url: str) -> None:
    from batchyard.errors import InvalidRequest

    with pytest.raises(InvalidRequest) as exc:
        WebhookPolicy(["hooks.example.test"]).check_url(url)
    assert exc.value.param == "webhook_url"
    assert exc.value.message.startswith("webhook_url")


def test_a_plain_allowed_url_passes() -> None:
    WebhookPolicy(["hooks.example.test"]).check_url("https://hooks.example.test:8443/a?b=c")
