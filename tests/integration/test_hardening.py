# ruff: noqa: UP031
"""A hostile key holder against a real server on loopback: what one client sends must not
take the server's memory or disk, reach past --no-auth from a web page, or draw a 500."""

from __future__ import annotations

import json
import os
import select
import socket
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest
from openai.types import Batch

from tests.conftest import ServerFactory, client_for, make_requests, openai_client_for
from tests.integration.test_webhooks import Receiver
from tests.serverproc import HEADERS, PeakRss, Server

MB = 1024 * 1024


def connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=30)


def head(path: str, headers: dict[str, str], host: str = "127.0.0.1") -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def status_of(sock: socket.socket) -> int:
    answer = b""
    while b"\r\n" not in answer:
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    return int(answer.split(b" ", 2)[1])


def answered(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def rss(server: Server) -> int:
    return int(psutil.Process(server.popen.pid).memory_info().rss)


# --- bodies ----------------------------------------------------------------------


def test_a_declared_length_takes_no_memory_until_the_bytes_arrive(
    start_server: ServerFactory,
) -> None:
    server = start_server()
    hdrs = {**HEADERS, "content-type": "application/json", "content-length": str(256 * MB)}
    with PeakRss(server.popen.pid) as peak:
        socks = [connect(server) for _ in range(3)]
        for s in socks:
            s.sendall(head("/v1/messages/batches", hdrs) + b"{")
        time.sleep(1.5)
        # the server still answers everyone else meanwhile
        assert httpx.get(f"{server.base_url}/healthz").status_code == 200
    for s in socks:
        s.close()
    assert peak.growth < 64 * MB, f"grew {peak.growth / MB:.0f} MB for 3 bytes received"


def test_a_slow_body_is_cut_off_at_the_deadline(start_server: ServerFactory) -> None:
    server = start_server("--body-timeout", "1")
    hdrs = {**HEADERS, "content-type": "application/json", "content-length": "1000"}
    with connect(server) as s:
        s.sendall(head("/v1/messages", hdrs) + b'{"model": ')
        s.settimeout(20)
        assert status_of(s) == 408


def test_bodies_received_at_once_are_bounded(start_server: ServerFactory) -> None:
    server = start_server("--max-body-reads", "2")
    hdrs = {**HEADERS, "content-type": "application/json", "content-length": "1000"}
    slow = [connect(server) for _ in range(2)]
    for s in slow:
        s.sendall(head("/v1/messages", hdrs) + b"{")
    time.sleep(0.5)
    body = {"model": "claude-test", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    refused = httpx.post(f"{server.base_url}/v1/messages", json=body, headers=HEADERS)
    assert refused.status_code == 529, refused.text
    assert refused.json()["error"]["type"] == "overloaded_error"
    for s in slow:
        s.close()
    time.sleep(0.5)  # their slots are free again
    assert httpx.post(f"{server.base_url}/v1/messages", json=body, headers=HEADERS).is_success


# --- schemas ---------------------------------------------------------------------


def _enum_schema(n: int, tag: int) -> dict[str, Any]:
    labels = [f"label-{tag}-{i}" for i in range(n)]
    return {
        "type": "object",
        "properties": {"label": {"enum": labels}},
        "required": ["label"],
        "additionalProperties": False,
    }


def test_huge_schemas_are_refused_before_compiling_and_kept_nowhere(
    start_server: ServerFactory,
) -> None:
    server = start_server()
    url = f"{server.base_url}/v1/messages/count_tokens"
    base = {"model": "claude-test", "messages": [{"role": "user", "content": "x"}]}
    httpx.post(url, json=base, headers=HEADERS)  # warm
    before = rss(server)
    for tag in range(12):  # 6.4 MB of enum each
        fmt = {"type": "json_schema", "schema": _enum_schema(500_000, tag)}
        r = httpx.post(url, json={**base, "output_config": {"format": fmt}}, headers=HEADERS)
        assert r.status_code == 400, r.text
        assert "output_config.format.schema" in r.json()["error"]["message"]
    grown = rss(server) - before
    assert grown < 64 * MB, f"grew {grown / MB:.0f} MB over 12 refused schemas"


# --- uploads ---------------------------------------------------------------------


def _upload_until_answered(server: Server, total: int, headers: dict[str, str]) -> tuple[int, int]:
    """A chunked multipart upload of `total` bytes; returns (status, bytes sent when the
    answer came)."""
    boundary = "hostileboundary"
    hdrs = {
        **headers,
        "content-type": f"multipart/form-data; boundary={boundary}",
        "transfer-encoding": "chunked",
    }
    sent = 0
    with connect(server) as s:
        s.sendall(head("/v1/files", hdrs))

        def chunk(data: bytes) -> None:
            s.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n")

        chunk(
            f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file";'
            ' filename="big.jsonl"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        )
        piece = b"x" * 65536
        try:
            while sent < total and not answered(s):
                chunk(piece)
                sent += len(piece)
                time.sleep(0.001)
        except (BrokenPipeError, ConnectionResetError):
            pass
        s.settimeout(30)
        return status_of(s), sent


def test_an_upload_is_refused_when_it_passes_the_limit_not_at_its_end(
    start_server: ServerFactory,
) -> None:
    server = start_server("--max-file-bytes", "3000000")  # past the 1 MB spooled in memory
    status, sent = _upload_until_answered(
        server, 40 * MB, {"authorization": f"Bearer {HEADERS['x-api-key']}"}
    )
    assert status == 413
    assert sent < 8 * MB, f"{sent / MB:.1f} MB were read before the 413"
    time.sleep(0.2)
    held = [f.path for f in psutil.Process(server.popen.pid).open_files()]
    spooled = [p for p in held if "(deleted)" in p or os.path.dirname(p) == tempfile.gettempdir()]
    assert not spooled, held  # the part spooled to disk is closed (and so removed)


def test_an_upload_past_the_quota_is_refused_early(start_server: ServerFactory) -> None:
    server = start_server("--file-quota-bytes", "500000")
    status, sent = _upload_until_answered(
        server, 40 * MB, {"authorization": f"Bearer {HEADERS['x-api-key']}"}
    )
    assert status == 413
    assert sent < 8 * MB


def test_a_client_leaving_mid_upload_is_no_server_error(start_server: ServerFactory) -> None:
    server = start_server()
    boundary = "b0undary"
    hdrs = {
        "authorization": f"Bearer {HEADERS['x-api-key']}",
        "content-type": f"multipart/form-data; boundary={boundary}",
        "content-length": str(10 * MB),
    }
    with connect(server) as s:
        s.sendall(
            head("/v1/files", hdrs)
            + f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n'.encode()
            + b"y" * 100_000
        )
        time.sleep(0.3)
    time.sleep(0.5)
    metrics = httpx.get(f"{server.base_url}/metrics").text
    assert 'status="500"' not in metrics
    assert "unhandled error" not in server.log()


# --- webhooks --------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail_first=False)
    yield r
    r.http.shutdown()


BAD_URLS = [
    "http://127.0.0.1:abc/x",
    "http://127.0.0.1/a\rb",
    "http://127.0.0.1/a\x7fb",
    "http://127.0.0.1/a\x00b",
    "http://127.0.0.1/" + "a" * 65536,
    "http://127.0.0.1\uff20evil.example/",
    "http://[::1/",
    "http://user@127.0.0.1/",
]


def test_bad_webhook_urls_are_refused_naming_the_field(start_server: ServerFactory) -> None:
    server = start_server("--webhook-host", "127.0.0.1")
    for url in BAD_URLS:
        body = {"requests": make_requests(1, "w"), "webhook_url": url}
        r = httpx.post(f"{server.base_url}/v1/messages/batches", json=body, headers=HEADERS)
        assert r.status_code == 400, (url[:40], r.text)
        assert r.json()["error"]["message"].startswith("webhook_url"), r.text


def test_a_bad_webhook_stored_beside_good_ones_stops_none_of_them(
    start_server: ServerFactory, receiver: Receiver, tmp_path: Any
) -> None:
    """A URL an older version let in (written into the store here) fails on its own."""
    database = tmp_path / "hooks.db"
    server = start_server("--webhook-host", "127.0.0.1", "--no-worker", database=database)
    client = client_for(server)
    ids = [
        client.messages.batches.create(
            requests=make_requests(1, f"w{i}"),  # type: ignore[arg-type]
            extra_body={"webhook_url": f"{receiver.base}/hook{i}"},
        ).id
        for i in range(3)
    ]
    server.stop()
    with sqlite3.connect(database) as db:
        db.execute(
            "UPDATE batches SET webhook_url = ? WHERE id = ?", ("http://127.0.0.1:abc/x", ids[1])
        )
    server = start_server(
        "--webhook-host", "127.0.0.1", "--housekeeping-interval", "0.2", database=database
    )
    deadline = time.monotonic() + 30
    while sorted(receiver.paths) != ["/hook0", "/hook2"]:
        assert time.monotonic() < deadline, receiver.paths
        time.sleep(0.1)
    assert "Traceback" not in server.log()


# --- --no-auth and the dashboard's sign-in ---------------------------------------


def test_no_auth_answers_only_its_own_loopback_host(start_server: ServerFactory) -> None:
    server = start_server("--no-auth")
    url = f"{server.base_url}/v1/organizations/api_keys"
    assert httpx.get(url, headers={"anthropic-version": "2023-06-01"}).status_code == 200
    rebound = httpx.post(
        url, json={"name": "x", "admin": True}, headers={"host": "attacker.example:8000"}
    )
    assert rebound.status_code == 403, rebound.text
    cross_site = httpx.post(
        f"{server.base_url}/v1/files",
        files={"file": ("a.jsonl", b"{}")},
        data={"purpose": "batch"},
        headers={"origin": "https://attacker.example"},
    )
    assert cross_site.status_code == 403, cross_site.text
    fetched = httpx.get(url, headers={"sec-fetch-site": "cross-site"})
    assert fetched.status_code == 403


def test_sign_in_refuses_a_null_or_foreign_origin(server: Server) -> None:
    for origin in ("null", "https://attacker.example"):
        r = httpx.post(
            f"{server.base_url}/ui/login",
            data={"key": HEADERS["x-api-key"]},
            headers={"origin": origin},
        )
        assert r.status_code == 403, (origin, r.status_code)
        assert "set-cookie" not in r.headers
    ok = httpx.post(
        f"{server.base_url}/ui/login",
        data={"key": HEADERS["x-api-key"]},
        headers={"origin": server.base_url},
    )
    assert ok.status_code == 303 and "batchyard_key" in ok.headers["set-cookie"]


# --- 400s, never 500s ------------------------------------------------------------


def deep(n: int) -> str:
    return "[" * n + "]" * n


def _object_schema(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {
            "type": "object",
            "properties": {"a": schema},
            "required": ["a"],
            "additionalProperties": False,
        }
    return schema


@pytest.mark.parametrize("levels", [100, 1_000, 100_000])
def test_deep_nesting_is_a_400_in_every_dialect(server: Server, levels: int) -> None:
    tool = '{"name": "t", "input_schema": {"type": "object", "x": %s}}' % deep(levels)
    message = (
        '{"model": "claude-test", "max_tokens": 5, "tools": [%s],'
        ' "messages": [{"role": "user", "content": "x"}]}' % tool
    )
    chat = (
        '{"model": "claude-test", "messages": [{"role": "user", "content": "x"}],'
        ' "metadata": {"a": %s}}' % deep(levels)
    )
    batch = '{"requests": [{"custom_id": "a", "params": %s}]}' % message
    json_headers = {**HEADERS, "content-type": "application/json"}
    for path, body, headers in (
        ("/v1/messages", message, json_headers),
        ("/v1/messages/count_tokens", message.replace('"max_tokens": 5, ', ""), json_headers),
        ("/v1/chat/completions", chat, {"authorization": f"Bearer {HEADERS['x-api-key']}"}),
    ):
        r = httpx.post(f"{server.base_url}{path}", content=body, headers=headers)
        assert r.status_code == 400, (path, r.text[:300])
        assert "nests deeper than" in r.text, (path, r.text[:300])
    r = httpx.post(f"{server.base_url}/v1/messages/batches", content=batch, headers=json_headers)
    if levels >= 1_000:  # past the decoder's own limit: refused at create
        assert r.status_code == 400 and "nests deeper than" in r.text, r.text[:300]
    else:  # the params are checked when the request runs: errored once, never retried
        assert r.status_code == 200, r.text[:300]
        client = client_for(server)
        deadline = time.monotonic() + 30
        while client.messages.batches.retrieve(r.json()["id"]).processing_status != "ended":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        [result] = list(client.messages.batches.results(r.json()["id"]))
        assert result.result.type == "errored"
        assert result.result.error.error.type == "invalid_request_error"
        assert "nests deeper than" in result.result.error.error.message


@pytest.mark.parametrize(
    "schema",
    [
        _object_schema(200),
        _object_schema(40),
        {
            "type": "object",
            "properties": {"a": {"type": "string", "pattern": "(" * 500 + "a" + ")" * 500}},
            "required": ["a"],
            "additionalProperties": False,
        },
    ],
    ids=["objects-200-deep", "objects-40-deep", "pattern-500-groups"],
)
def test_schemas_too_deep_to_compile_are_400s(server: Server, schema: dict[str, Any]) -> None:
    base = {"model": "claude-test", "messages": [{"role": "user", "content": "x"}]}
    fmt = {"format": {"type": "json_schema", "schema": schema}}
    tool = {"name": "t", "input_schema": schema, "strict": True}
    for path, body in (
        ("/v1/messages", {**base, "max_tokens": 5, "output_config": fmt}),
        ("/v1/messages/count_tokens", {**base, "output_config": fmt}),
        ("/v1/messages", {**base, "max_tokens": 5, "tools": [tool]}),
    ):
        r = httpx.post(f"{server.base_url}{path}", json=body, headers=HEADERS)
        assert r.status_code == 400, (path, r.text[:300])
    chat = {
        **base,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    }
    r = httpx.post(
        f"{server.base_url}/v1/chat/completions",
        json=chat,
        headers={"authorization": f"Bearer {HEADERS['x-api-key']}"},
    )
    assert r.status_code == 400, r.text[:300]


def test_report_instants_out_of_range_are_400s(server: Server) -> None:
    for path in ("/v1/organizations/usage_report/messages", "/v1/organizations/cost_report"):
        for when in ("9999-12-31T00:00:00Z", "0001-01-01T00:00:00Z"):
            r = httpx.get(f"{server.base_url}{path}", params={"starting_at": when}, headers=HEADERS)
            assert r.status_code == 400, (path, when, r.text)


def _openai_batch(server: Server, lines: list[str]) -> Batch:
    client = openai_client_for(server)
    uploaded = client.files.create(file=("in.jsonl", "\n".join(lines).encode()), purpose="batch")
    return client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )


def _line(custom_id: str, body: str) -> str:
    return '{"custom_id": "%s", "method": "POST", "url": "/v1/chat/completions", "body": %s}' % (
        custom_id,
        body,
    )


def test_an_openai_batch_line_nested_too_deep_fails_at_create(server: Server) -> None:
    body = (
        '{"model": "claude-test", "messages": [{"role": "user", "content": "x"}],'
        ' "metadata": %s}' % deep(200)
    )
    batch = _openai_batch(server, [_line("deep", body)])
    assert batch.status == "failed"
    assert batch.errors is not None and batch.errors.data is not None
    [error] = batch.errors.data
    assert error.line == 1 and "nests deeper than" in (error.message or ""), error


def test_openai_batch_numbers_out_of_range_end_their_request_once(server: Server) -> None:
    lines = [
        _line(
            f"r{i}",
            '{"model": "claude-test", "max_tokens": %s,'
            ' "messages": [{"role": "user", "content": "x"}]}' % max_tokens,
        )
        for i, max_tokens in enumerate(("1e999", "9" * 5000, "5"))
    ]
    client = openai_client_for(server)
    batch = _openai_batch(server, lines)
    deadline = time.monotonic() + 30
    while batch.status not in ("completed", "failed"):
        assert time.monotonic() < deadline, batch.status
        time.sleep(0.1)
        batch = client.batches.retrieve(batch.id)
    assert batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (1, 2)
    assert batch.error_file_id is not None
    errors = [json.loads(x) for x in client.files.content(batch.error_file_id).text.splitlines()]
    assert sorted(e["custom_id"] for e in errors) == ["r0", "r1"]
    for e in errors:
        assert e["response"]["status_code"] == 400, e
    assert "Traceback" not in server.log()


def test_a_ref_fan_out_on_the_fake_engine_is_bounded(server: Server) -> None:
    defs: dict[str, Any] = {
        f"d{i}": {
            "type": "object",
            "properties": {k: {"$ref": f"#/$defs/d{i + 1}"} for k in "abcd"},
            "required": list("abcd"),
            "additionalProperties": False,
        }
        for i in range(10)
    }
    defs["d10"] = {"type": "string"}
    schema = {"$ref": "#/$defs/d0", "$defs": defs}
    body = {
        "model": "claude-test",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "x"}],
        "output_config": {"format": {"type": "json_schema", "schema": schema}},
    }
    r = httpx.post(f"{server.base_url}/v1/messages", json=body, headers=HEADERS, timeout=30)
    assert r.status_code == 400, r.text[:300]
    assert "20,000" in r.text
