"""The official `anthropic` SDK (strict response validation) against the real server."""

from __future__ import annotations

import time
from collections.abc import Callable

import anthropic
import httpx
import pytest
from anthropic.types.messages import MessageBatch, MessageBatchIndividualResponse

from tests.conftest import ServerFactory, async_client_for, client_for, make_requests
from tests.serverproc import ADMIN_KEY, HEADERS, Server


def wait_ended(client: anthropic.Anthropic, batch_id: str, timeout: float = 30.0) -> MessageBatch:
    deadline = time.monotonic() + timeout
    while True:
        batch = client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
        if time.monotonic() > deadline:
            raise AssertionError(f"batch did not end in {timeout}s: {batch}")
        time.sleep(0.05)


def test_create_poll_results_sync(client: anthropic.Anthropic) -> None:
    batch = client.messages.batches.create(requests=make_requests(25))  # type: ignore[arg-type]
    assert batch.id.startswith("msgbatch_")
    assert batch.type == "message_batch"
    assert batch.processing_status in ("in_progress", "ended")
    counts = batch.request_counts
    assert counts.processing + counts.succeeded == 25
    assert batch.results_url is None or batch.processing_status == "ended"
    assert (batch.expires_at - batch.created_at).total_seconds() == pytest.approx(86400, abs=1)
    assert batch._request_id and batch._request_id.startswith("req_")

    ended = wait_ended(client, batch.id)
    assert ended.request_counts.succeeded == 25
    assert ended.request_counts.processing == 0
    assert ended.ended_at is not None and ended.ended_at >= ended.created_at
    assert ended.results_url == f"/v1/messages/batches/{batch.id}/results"

    results = list(client.messages.batches.results(batch.id))
    assert len(results) == 25
    assert all(isinstance(r, MessageBatchIndividualResponse) for r in results)
    assert sorted(r.custom_id for r in results) == sorted(f"req-{i}" for i in range(25))
    for r in results:
        assert r.result.type == "succeeded"
        message = r.result.message
        assert message.role == "assistant" and message.type == "message"
        assert message.id.startswith("msg_")
        assert message.model == "claude-test"
        text = message.content[0].text  # type: ignore[union-attr]
        n = r.custom_id.split("-")[1]
        assert text.endswith(f"Say something about number {n}")
        assert message.usage.input_tokens == 5
        assert message.usage.output_tokens == len(text.split())
        assert message.usage.service_tier == "batch"
        assert message.stop_reason == "end_turn"


@pytest.mark.anyio
async def test_create_poll_results_async(server: Server) -> None:
    import asyncio

    client = async_client_for(server)
    batch = await client.messages.batches.create(requests=make_requests(10, "async"))  # type: ignore[arg-type]
    for _ in range(600):
        batch = await client.messages.batches.retrieve(batch.id)
        if batch.processing_status == "ended":
            break
        await asyncio.sleep(0.05)
    assert batch.processing_status == "ended"
    results = [r async for r in await client.messages.batches.results(batch.id)]
    assert sorted(r.custom_id for r in results) == sorted(f"async-{i}" for i in range(10))
    assert {r.result.type for r in results} == {"succeeded"}
    page = await client.messages.batches.list(limit=1)
    assert len(page.data) == 1
    await client.close()


def test_list_pagination_both_directions(start_server: ServerFactory) -> None:
    server = start_server()
    client = client_for(server)
    created = [
        client.messages.batches.create(requests=make_requests(1, f"b{i}")).id  # type: ignore[arg-type]
        for i in range(7)
    ]
    newest_first = list(reversed(created))

    first = client.messages.batches.list(limit=3)
    assert [b.id for b in first.data] == newest_first[:3]
    assert first.has_more is True
    assert first.first_id == newest_first[0] and first.last_id == newest_first[2]

    # Auto-pagination follows after_id = last_id across pages.
    assert [b.id for b in client.messages.batches.list(limit=3)] == newest_first

    second = client.messages.batches.list(limit=3, after_id=first.last_id or "")
    assert [b.id for b in second.data] == newest_first[3:6]
    last = client.messages.batches.list(limit=3, after_id=second.last_id or "")
    assert [b.id for b in last.data] == newest_first[6:]
    assert last.has_more is False

    # Backwards: before_id returns newer items, still newest first.
    back = client.messages.batches.list(limit=2, before_id=newest_first[4])
    assert [b.id for b in back.data] == newest_first[2:4]
    assert back.has_more is True
    back_all = list(client.messages.batches.list(limit=2, before_id=newest_first[6]))
    assert {b.id for b in back_all} == set(newest_first[:6])
    top = client.messages.batches.list(limit=5, before_id=newest_first[1])
    assert [b.id for b in top.data] == newest_first[:1] and top.has_more is False

    assert len(client.messages.batches.list().data) == 7  # default limit 20
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.list(limit=0)
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.list(limit=1001)
    assert len(client.messages.batches.list(limit=1000).data) == 7


def test_cancel_mid_run(start_server: ServerFactory) -> None:
    server = start_server("--fake-latency-ms", "100", "--fake-capacity", "2")
    client = client_for(server)
    batch = client.messages.batches.create(requests=make_requests(60, "c"))  # type: ignore[arg-type]
    deadline = time.monotonic() + 10
    while client.messages.batches.retrieve(batch.id).request_counts.succeeded < 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)

    canceled = client.messages.batches.cancel(batch.id)
    assert canceled.processing_status in ("canceling", "ended")
    assert canceled.cancel_initiated_at is not None
    if canceled.processing_status == "canceling":
        assert canceled.results_url is None

    ended = wait_ended(client, batch.id)
    counts = ended.request_counts
    assert counts.canceled > 0 and counts.succeeded >= 2
    assert counts.succeeded + counts.canceled == 60
    assert counts.processing == counts.errored == counts.expired == 0

    results = list(client.messages.batches.results(batch.id))
    by_type: dict[str, int] = {}
    for r in results:
        by_type[r.result.type] = by_type.get(r.result.type, 0) + 1
    assert by_type == {"succeeded": counts.succeeded, "canceled": counts.canceled}
    assert len({r.custom_id for r in results}) == 60

    again = client.messages.batches.cancel(batch.id)  # cancel of an ended batch: unchanged
    assert again.processing_status == "ended" and again.request_counts == counts


def test_delete_rules(start_server: ServerFactory) -> None:
    server = start_server("--fake-latency-ms", "200", "--fake-capacity", "1")
    client = client_for(server)
    batch = client.messages.batches.create(requests=make_requests(20, "d"))  # type: ignore[arg-type]
    with pytest.raises(anthropic.BadRequestError) as running:
        client.messages.batches.delete(batch.id)
    assert running.value.status_code == 400
    assert running.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "cancel it first" in running.value.message

    # Results exist only once the batch has ended: the SDK refuses on a null
    # results_url, and a direct GET is a 400 in the error shape.
    with pytest.raises(anthropic.AnthropicError, match="No `results_url`"):
        client.messages.batches.results(batch.id)
    direct = httpx.get(f"{server.base_url}/v1/messages/batches/{batch.id}/results", headers=HEADERS)
    assert direct.status_code == 400
    assert direct.json()["error"]["type"] == "invalid_request_error"

    client.messages.batches.cancel(batch.id)
    wait_ended(client, batch.id)
    deleted = client.messages.batches.delete(batch.id)
    assert deleted.id == batch.id and deleted.type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(batch.id)
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.delete(batch.id)


def test_unknown_ids_are_404(client: anthropic.Anthropic) -> None:
    missing = "msgbatch_01doesnotexist0000000"
    calls: list[Callable[[], object]] = [
        lambda: client.messages.batches.retrieve(missing),
        lambda: client.messages.batches.cancel(missing),
        lambda: client.messages.batches.delete(missing),
        lambda: client.messages.batches.results(missing),
    ]
    for call in calls:
        with pytest.raises(anthropic.NotFoundError) as exc:
            call()
        assert exc.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
        assert exc.value.request_id and exc.value.request_id.startswith("req_")
    with pytest.raises(anthropic.BadRequestError) as cursor:
        client.messages.batches.list(after_id=missing)
    assert "after_id" in cursor.value.message


def test_mixed_batch_invalid_params_end_errored(client: anthropic.Anthropic) -> None:
    good = make_requests(3, "ok")
    bad_params = {
        "unknown-model": {
            "model": "gpt-4o",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "x"}],
        },
        "zero-max-tokens": {
            "model": "claude-test",
            "max_tokens": 0,
            "messages": [{"role": "user", "content": "x"}],
        },
        "no-messages": {"model": "claude-test", "max_tokens": 10, "messages": []},
        "bad-block": {
            "model": "claude-test",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": [{"type": "txt", "text": "x"}]}],
        },
        "missing-model": {"max_tokens": 10, "messages": [{"role": "user", "content": "x"}]},
        "bad-role": {
            "model": "claude-test",
            "max_tokens": 10,
            "messages": [{"role": "robot", "content": "x"}],
        },
    }
    requests = good + [{"custom_id": k, "params": v} for k, v in bad_params.items()]
    batch = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    ended = wait_ended(client, batch.id)
    assert ended.request_counts.succeeded == 3
    assert ended.request_counts.errored == len(bad_params)
    results = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
    expected_fragment = {
        "unknown-model": "gpt-4o",
        "zero-max-tokens": "max_tokens",
        "no-messages": "messages",
        "bad-block": "messages.0.content.0.type",
        "missing-model": "model",
        "bad-role": "messages.0.role",
    }
    for custom_id, fragment in expected_fragment.items():
        result = results[custom_id]
        assert result.type == "errored", custom_id
        assert result.error.type == "error"
        assert result.error.error.type == "invalid_request_error"
        assert fragment in result.error.error.message, (custom_id, result.error.error.message)
    assert all(results[f"ok-{i}"].type == "succeeded" for i in range(3))


def test_beta_paths_and_old_sdk_headers(server: Server) -> None:
    client = client_for(server)
    beta = client.beta.messages.batches.create(
        requests=make_requests(2, "beta"),  # type: ignore[arg-type]
        betas=["message-batches-2024-09-24"],
        extra_query={"beta": "true"},
    )
    assert (
        client.beta.messages.batches.retrieve(beta.id, extra_query={"beta": "true"}).id == beta.id
    )

    # The 0.x SDK and curl: x-api-key and anthropic-version 2023-06-01.
    r = httpx.get(
        f"{server.base_url}/v1/messages/batches/{beta.id}?beta=true",
        headers=HEADERS,
    )
    assert r.status_code == 200 and r.json()["id"] == beta.id
    assert r.headers["content-type"] == "application/json"
    assert r.headers["request-id"].startswith("req_")


def test_missing_key_is_401(server: Server) -> None:
    r = httpx.get(f"{server.base_url}/v1/messages/batches")
    assert r.status_code == 401
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
    assert body["request_id"] == r.headers["request-id"]

    client = anthropic.Anthropic(
        base_url=server.base_url,
        api_key=ADMIN_KEY,
        default_headers={"Authorization": anthropic.omit},  # type: ignore[dict-item]
        max_retries=0,
    )
    with pytest.raises(anthropic.AuthenticationError):
        client.messages.batches.list()


def test_unknown_route_and_method_use_error_shape(server: Server) -> None:
    r = httpx.get(f"{server.base_url}/v1/nothing-here", headers=HEADERS)
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
    r = httpx.put(f"{server.base_url}/v1/messages/batches", headers=HEADERS)
    assert r.status_code == 405 and r.json()["error"]["type"] == "invalid_request_error"


def test_public_base_url_makes_results_url_absolute(start_server: ServerFactory) -> None:
    server = start_server("--public-base-url", "https://batches.example.test/")
    client = client_for(server)
    batch = client.messages.batches.create(requests=make_requests(2, "abs"))  # type: ignore[arg-type]
    ended = wait_ended(client, batch.id)
    assert (
        ended.results_url == f"https://batches.example.test/v1/messages/batches/{batch.id}/results"
    )


def test_path_prefix_and_relative_results_url(start_server: ServerFactory) -> None:
    server = start_server("--path-prefix", "/anthropic")
    client = anthropic.Anthropic(
        base_url=f"{server.base_url}/anthropic",
        api_key=ADMIN_KEY,
        _strict_response_validation=True,
        max_retries=0,
    )
    batch = client.messages.batches.create(requests=make_requests(3, "p"))  # type: ignore[arg-type]
    ended = wait_ended(client, batch.id)
    assert ended.results_url == f"/v1/messages/batches/{batch.id}/results"
    # The SDK resolves the relative URL against its base URL, prefix included.
    assert sorted(r.custom_id for r in client.messages.batches.results(batch.id)) == [
        "p-0",
        "p-1",
        "p-2",
    ]
    assert httpx.get(f"{server.base_url}/readyz").json() == {"status": "ready"}
