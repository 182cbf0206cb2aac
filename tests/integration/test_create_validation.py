"""Structural problems reject the whole batch with 400 (or 413) and name the request index."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import pytest

from tests.serverproc import ADMIN_KEY, HEADERS, Server


def params(**extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-test",
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }


def create_error(client: anthropic.Anthropic, body: Any) -> anthropic.APIStatusError:
    with pytest.raises(anthropic.APIStatusError) as exc:
        client.post("/v1/messages/batches", body=body, cast_to=object)
    return exc.value


CASES = [
    pytest.param({}, "requests", id="missing-requests"),
    pytest.param({"requests": []}, "at least one request", id="empty-requests"),
    pytest.param({"requests": "x"}, "requests", id="requests-not-array"),
    pytest.param(
        {
            "requests": [
                {"custom_id": "a", "params": params()},
                {"custom_id": "b c", "params": params()},
            ]
        },
        "requests.1.custom_id",
        id="custom-id-pattern",
    ),
    pytest.param(
        {"requests": [{"custom_id": "x" * 65, "params": params()}]},
        "requests.0.custom_id",
        id="custom-id-too-long",
    ),
    pytest.param(
        {"requests": [{"custom_id": "", "params": params()}]},
        "requests.0.custom_id",
        id="custom-id-empty",
    ),
    pytest.param(
        {"requests": [{"custom_id": "a", "params": params()}] * 2 + []},
        "requests.1.custom_id: duplicate custom_id 'a'",
        id="duplicate-custom-id",
    ),
    pytest.param(
        {
            "requests": [
                {"custom_id": "a", "params": params()},
                {"custom_id": "b", "params": "hello"},
            ]
        },
        "requests.1.params: Input should be an object",
        id="params-not-object",
    ),
    pytest.param(
        {"requests": [{"custom_id": "a", "params": [1, 2]}]},
        "requests.0.params: Input should be an object",
        id="params-array",
    ),
    pytest.param(
        {"requests": [{"custom_id": "a"}]},
        "requests.0",
        id="params-missing",
    ),
    pytest.param(
        {
            "requests": [
                {"custom_id": "a", "params": params()},
                {"custom_id": "b", "params": params(stream=True)},
            ]
        },
        "requests.1.params.stream",
        id="stream-true",
    ),
    pytest.param(
        {"requests": [{"custom_id": "a", "params": params(speed="fast")}]},
        "requests.0.params.speed",
        id="speed",
    ),
]


@pytest.mark.parametrize(("body", "fragment"), CASES)
def test_structural_error_is_400(
    client: anthropic.Anthropic, body: dict[str, Any], fragment: str
) -> None:
    before = len(client.messages.batches.list(limit=1000).data)
    err = create_error(client, body)
    assert isinstance(err, anthropic.BadRequestError)
    assert err.status_code == 400
    assert err.body["type"] == "error"  # type: ignore[index]
    assert err.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert fragment in err.body["error"]["message"]  # type: ignore[index]
    assert len(client.messages.batches.list(limit=1000).data) == before  # nothing was created


def test_stream_false_is_accepted(client: anthropic.Anthropic) -> None:
    batch = client.messages.batches.create(
        requests=[{"custom_id": "s", "params": params(stream=False)}]  # type: ignore[typeddict-item]
    )
    assert batch.request_counts.processing + batch.request_counts.succeeded == 1


def test_body_not_json(server: Server) -> None:
    for body in (b"{not json", b"", b'{"requests": '):
        r = httpx.post(
            f"{server.base_url}/v1/messages/batches",
            content=body,
            headers={**HEADERS, "content-type": "application/json"},
        )
        assert r.status_code == 400, body
        assert r.json()["error"]["type"] == "invalid_request_error"
        assert "not valid JSON" in r.json()["error"]["message"]
    r = httpx.post(
        f"{server.base_url}/v1/messages/batches",
        content=b"[]",
        headers={**HEADERS, "content-type": "application/json"},
    )
    assert r.status_code == 400 and "Expected `object`" in r.json()["error"]["message"]


def test_more_than_100k_requests(client: anthropic.Anthropic) -> None:
    body = {"requests": [{"custom_id": f"r{i}", "params": {}} for i in range(100_001)]}
    err = create_error(client, body)
    assert err.status_code == 400
    assert "at most 100,000 requests, got 100,001" in err.message


def test_body_over_256_mb_is_413(server: Server) -> None:
    """A declared length over 256 MB is refused before the body is read."""
    import json
    import socket

    declared = 256 * 1024 * 1024 + 1
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/messages/batches HTTP/1.1\r\nHost: x\r\nanthropic-version: 2023-06-01\r\n"
            + f"x-api-key: {ADMIN_KEY}\r\n".encode()
            + b""
            b"content-type: application/json\r\n"
            + f"content-length: {declared}\r\n\r\n".encode()
            + b'{"requests": ['
        )
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    assert json.loads(body)["error"]["type"] == "request_too_large"
