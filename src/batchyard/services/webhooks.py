"""Webhooks: when a batch that carries a `webhook_url` ends, a worker POSTs a signed event.

- Only hosts the operator allows (`--webhook-host`) may be called: a tenant cannot
  make the server reach into its network.
- The event is `{"id": "evt_…", "type": "message_batch.ended", "created_at", "data": <the
  batch>}`, signed as `batchyard-signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`
  with `--webhook-secret` (the scheme of Stripe's and Svix's webhooks; a receiver
  checks the HMAC and that `t` is recent).
- The event's `id` and `created_at` (when the batch ended) are the same on every
  attempt, so a receiver whose 2xx was lost can recognise the resend.
- Delivery retries with backoff (2 s, 4 s, … up to 1 h) until a 2xx, at most
  `MAX_ATTEMPTS` times; a worker takes a due delivery with a short lease, so two
  workers never send the same attempt.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import msgspec

from batchyard.errors import InvalidRequest
from batchyard.store.port import WebhookStore
from batchyard.store.records import BatchRecord

log = logging.getLogger("batchyard.webhooks")

MAX_ATTEMPTS = 10
LEASE_SECONDS = 60.0
SIGNATURE_HEADER = "batchyard-signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def event_id(batch: BatchRecord) -> str:
    """The same on every attempt, so a receiver can drop a resend it has already seen."""
    return "evt_" + batch.id.removeprefix("msgbatch_")


def verify(
    secret: str, header: str, body: bytes, tolerance: float = 300.0, now: float | None = None
) -> bool:
    """What a receiver does: the HMAC matches and the timestamp is recent."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    expected = sign(secret, timestamp, body)
    return (
        hmac.compare_digest(expected, header)
        and abs((time.time() if now is None else now) - timestamp) <= tolerance
    )


@dataclass(frozen=True)
class WebhookPolicy:
    hosts: list[str] = field(default_factory=list)
    secret: str | None = None

    def check_url(self, url: str) -> None:
        """A URL the sender can POST to, naming an allowed host: printable ASCII (an
        international name in its punycode form), at most `MAX_URL_LENGTH` characters,
        read alike by the URL parser here and by the HTTP client that will call it;
        InvalidRequest naming `webhook_url` otherwise."""
        host = _url_host(url)
        if not self.hosts:
            raise InvalidRequest(
                "webhook_url: webhooks are off on this server (the operator allows hosts"
                " with --webhook-host)",
                param="webhook_url",
            )
        if host not in self.hosts:
            raise InvalidRequest(
                f"webhook_url: host {host!r} is not allowed on this server",
                param="webhook_url",
            )


MAX_URL_LENGTH = 2048


def _url_host(url: str) -> str:
    def bad(why: str) -> InvalidRequest:
        return InvalidRequest(f"webhook_url: {why}", param="webhook_url")

    if len(url) > MAX_URL_LENGTH:
        raise bad(f"at most {MAX_URL_LENGTH} characters")
    if not url.isascii() or not url.isprintable() or " " in url:
        raise bad("must be printable ASCII with no spaces (percent-encode the rest)")
    try:
        parts = urlsplit(url)
        hostname, port = parts.hostname, parts.port
        parsed = httpx.URL(url)
    except (ValueError, httpx.InvalidURL) as exc:
        raise bad(f"not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise bad("must be an http(s) URL")
    if port is not None and not 0 < port < 65536:
        raise bad(f"port {port} is out of range")
    if parsed.host != hostname or parsed.port != port or parts.username or parts.password:
        raise bad("must name its host plainly (no user info)")
    return hostname


def _backoff(attempts: int) -> float:
    return float(min(3600, 2**attempts))


class WebhookSender:
    def __init__(
        self,
        store: WebhookStore,
        policy: WebhookPolicy,
        to_wire: Callable[[BatchRecord], object],
        now: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.store = store
        self.policy = policy
        self.to_wire = to_wire
        self.now = now
        self.transport = transport
        """Where the POSTs go (tests pass an `httpx.MockTransport`); None: the network."""

    async def deliver_due(self) -> int:
        """Send every due event once; returns how many were delivered."""
        due = await self.store.take_due(self.now(), LEASE_SECONDS)
        if not due:
            return 0
        delivered = 0
        async with httpx.AsyncClient(
            timeout=10, follow_redirects=False, transport=self.transport
        ) as client:
            for d in due:
                ok, detail = False, ""
                try:
                    ok, detail = await self._send(client, d.batch, d.url)
                except (httpx.HTTPError, InvalidRequest) as exc:
                    detail = str(exc)
                except Exception as exc:  # one bad delivery must never stop the others
                    log.warning("webhook of %s failed unexpectedly", d.batch.id, exc_info=exc)
                    detail = f"{type(exc).__name__}: {exc}"
                delivered += ok
                await self._record(d.batch, d.attempts + 1, ok, detail)
        return delivered

    async def _send(
        self, client: httpx.AsyncClient, record: BatchRecord, url: str
    ) -> tuple[bool, str]:
        self.policy.check_url(url)  # the allowed hosts may have changed since
        body = msgspec.json.encode(
            {
                "id": event_id(record),
                "type": "message_batch.ended",
                "created_at": int(record.ended_at or self.now()),
                "data": self.to_wire(record),
            }
        )
        headers = {"content-type": "application/json", "user-agent": "batchyard-webhooks"}
        if self.policy.secret:
            headers[SIGNATURE_HEADER] = sign(self.policy.secret, int(self.now()), body)
        r = await client.post(url, content=body, headers=headers)
        return 200 <= r.status_code < 300, f"HTTP {r.status_code}"

    async def _record(self, record: BatchRecord, attempts: int, ok: bool, detail: str) -> None:
        now = self.now()
        give_up = attempts >= MAX_ATTEMPTS
        if ok or give_up:
            if not ok:
                log.warning(
                    "webhook of %s failed %d times (%s); giving up", record.id, attempts, detail
                )
            await self.store.record_attempt(record.seq, attempts, done_at=now, next_at=None)
        else:
            log.info(
                "webhook of %s failed (%s); attempt %d of %d",
                record.id,
                detail,
                attempts,
                MAX_ATTEMPTS,
            )
            await self.store.record_attempt(
                record.seq, attempts, done_at=None, next_at=now + _backoff(attempts)
            )
