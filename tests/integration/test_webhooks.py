"""Webhooks: a signed event to a loopback receiver when a batch ends, retried after a failure."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import anthropic
import pytest

from batchyard.services.webhooks import SIGNATURE_HEADER, verify
from tests.conftest import ServerFactory, client_for, make_requests

SECRET = "webhook-secret-for-tests"


class Receiver:
    """Answers 500 to the first delivery (unless not `fail_first`), 200 after; keeps what
    arrived and the paths it arrived at."""

    def __init__(self, fail_first: bool = True) -> None:
        self.received: list[tuple[dict[str, str], bytes, int]] = []
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                status = 500 if fail_first and not receiver.received else 200
                receiver.received.append((dict(self.headers), body, status))
                receiver.paths.append(self.path)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.http = HTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.http.server_address[1]}"
        self.url = f"{self.base}/hooks/batches"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.http.shutdown()


def test_signed_event_delivered_after_a_retry(
    start_server: ServerFactory, receiver: Receiver
) -> None:
    server = start_server(
        "--webhook-host", "127.0.0.1", "--webhook-secret", SECRET,
        "--housekeeping-interval", "0.2", "--poll-interval", "0.05",
    )  # fmt: skip
    client = client_for(server)
    batch = client.messages.batches.create(
        requests=make_requests(3, "w"),  # type: ignore[arg-type]
        extra_body={"webhook_url": receiver.url},
    )
    deadline = time.monotonic() + 30
    while len(receiver.received) < 2:
        assert time.monotonic() < deadline, f"deliveries: {len(receiver.received)}"
        time.sleep(0.1)
    time.sleep(0.5)
    assert [status for _, _, status in receiver.received] == [500, 200]  # no more after a 2xx
    headers, body, _ = receiver.received[1]
    assert verify(SECRET, headers[SIGNATURE_HEADER], body)
    assert not verify("another-secret", headers[SIGNATURE_HEADER], body)
    assert not verify(SECRET, headers[SIGNATURE_HEADER], body + b" ")
    event = json.loads(body)
    assert event["type"] == "message_batch.ended" and event["id"].startswith("evt_")
    assert event["data"]["id"] == batch.id and event["data"]["processing_status"] == "ended"
    assert event["data"]["request_counts"]["succeeded"] == 3


def test_webhook_hosts_are_the_operators_choice(start_server: ServerFactory) -> None:
    closed = client_for(start_server())
    with pytest.raises(anthropic.BadRequestError, match="webhooks are off"):
        closed.messages.batches.create(
            requests=make_requests(1, "x"),  # type: ignore[arg-type]
            extra_body={"webhook_url": "http://127.0.0.1:9/hook"},
        )
    allowed = client_for(start_server("--webhook-host", "hooks.example.test"))
    with pytest.raises(anthropic.BadRequestError, match="not allowed"):
        allowed.messages.batches.create(
            requests=make_requests(1, "x"),  # type: ignore[arg-type]
            extra_body={"webhook_url": "http://169.254.169.254/latest"},
        )
    assert allowed.messages.batches.list().data == []
