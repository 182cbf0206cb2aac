"""Workspaces and keys against the real server, with the official SDK as every client."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import anthropic
import httpx
import pytest

from tests.conftest import ServerFactory, client_for, make_requests, new_key, new_workspace
from tests.serverproc import HEADERS, Server


def wait_ended(client: anthropic.Anthropic, batch_id: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while client.messages.batches.retrieve(batch_id).processing_status != "ended":
        assert time.monotonic() < deadline, "batch did not end"
        time.sleep(0.05)


@pytest.fixture
def team_server(start_server: ServerFactory) -> Server:
    return start_server("--housekeeping-interval", "0.2")


def test_workspaces_cannot_see_each_others_batches(team_server: Server) -> None:
    admin = client_for(team_server)
    a, b = new_workspace(admin, "team-a"), new_workspace(admin, "team-b")
    alice = client_for(team_server, api_key=new_key(team_server, a)[1])
    bob = client_for(team_server, api_key=new_key(team_server, b)[1])

    mine = alice.messages.batches.create(requests=make_requests(3, "a"))  # type: ignore[arg-type]
    running = alice.messages.batches.create(requests=make_requests(2, "r"))  # type: ignore[arg-type]
    wait_ended(alice, mine.id)

    # Every endpoint answers 404 for another workspace's batch, exactly as for none.
    for call in (
        lambda: bob.messages.batches.retrieve(mine.id),
        lambda: bob.messages.batches.cancel(running.id),
        lambda: bob.messages.batches.delete(mine.id),
        lambda: bob.messages.batches.retrieve("msgbatch_01doesnotexist"),
    ):
        with pytest.raises(anthropic.NotFoundError) as err:
            call()
        assert err.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
        assert err.value.workspace_id == b
    results = httpx.get(
        f"{team_server.base_url}/v1/messages/batches/{mine.id}/results",
        headers={**HEADERS, "x-api-key": bob.api_key or ""},
    )
    assert results.status_code == 404
    assert results.json()["error"]["type"] == "not_found_error"
    assert "team-a" not in results.text and mine.id in results.text
    assert [x.id for x in bob.messages.batches.list()] == []
    assert {x.id for x in alice.messages.batches.list()} == {mine.id, running.id}

    # The admin key reaches each workspace by header (the SDK's workspace_id=), and
    # acts in the default workspace without it.
    in_a = client_for(team_server, default_headers={"anthropic-workspace-id": a})
    assert in_a.messages.batches.retrieve(mine.id).id == mine.id
    with pytest.raises(anthropic.NotFoundError):
        admin.messages.batches.retrieve(mine.id)
    # A workspace key may name its own workspace, but no other.
    assert client_for(
        team_server, api_key=alice.api_key or "", default_headers={"anthropic-workspace-id": a}
    ).messages.batches.retrieve(mine.id)
    with pytest.raises(anthropic.PermissionDeniedError) as denied:
        client_for(
            team_server, api_key=bob.api_key or "", default_headers={"anthropic-workspace-id": a}
        ).messages.batches.list()
    assert denied.value.body["error"]["type"] == "permission_error"  # type: ignore[index]


def test_the_list_cursor_of_another_workspace_is_unknown(team_server: Server) -> None:
    admin = client_for(team_server)
    a = new_workspace(admin, "a")
    alice = client_for(team_server, api_key=new_key(team_server, a)[1])
    theirs = admin.messages.batches.create(requests=make_requests(1, "x"))  # type: ignore[arg-type]
    with pytest.raises(anthropic.BadRequestError, match="no message batch"):
        alice.messages.batches.list(after_id=theirs.id)


def test_revoking_a_key_takes_effect_at_once(team_server: Server) -> None:
    admin = client_for(team_server)
    key_id, secret = new_key(team_server, new_workspace(admin, "rev"))
    user = client_for(team_server, api_key=secret)
    assert user.messages.batches.list().data == []
    revoked = admin.organization.api_keys.update(key_id, status="inactive")
    assert revoked.status == "inactive"
    with pytest.raises(anthropic.AuthenticationError) as err:
        user.messages.batches.list()
    assert err.value.status_code == 401
    assert err.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    admin.organization.api_keys.update(key_id, status="active")
    assert user.messages.batches.list().data == []
    # Archiving the workspace archives its keys.
    scope = admin.organization.api_keys.retrieve(key_id).scope
    assert scope.type == "workspace"
    admin.organization.workspaces.archive(scope.workspace_id)
    with pytest.raises(anthropic.AuthenticationError):
        user.messages.batches.list()
    assert admin.organization.api_keys.retrieve(key_id).status == "archived"


def test_auth_failures_in_the_api_shape(team_server: Server) -> None:
    with pytest.raises(anthropic.AuthenticationError) as bad:
        client_for(team_server, api_key="sk-by-api01-not-a-real-key").messages.batches.list()
    assert bad.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
        "request_id": bad.value.request_id,
    }
    user = client_for(team_server, api_key=new_key(team_server, "wrkspc_default")[1])
    with pytest.raises(anthropic.PermissionDeniedError) as denied:
        user.organization.workspaces.list()
    assert "admin key" in denied.value.message


def test_admin_api_with_the_sdk(team_server: Server) -> None:
    admin = client_for(team_server)
    ws = admin.organization.workspaces.create(
        name="research", extra_body={"rate_limits": {"requests_per_minute": 100}}
    )
    assert ws.id.startswith("wrkspc_") and ws.type == "workspace" and ws.archived_at is None
    assert admin.organization.workspaces.retrieve(ws.id).name == "research"
    renamed = admin.organization.workspaces.update(ws.id, name="research-2")
    assert renamed.name == "research-2"
    assert renamed.model_extra is not None
    assert renamed.model_extra["rate_limits"]["requests_per_minute"] == 100
    listed = [w.id for w in admin.organization.workspaces.list(include_default=True)]
    assert ws.id in listed and "wrkspc_default" in listed
    assert "wrkspc_default" not in [w.id for w in admin.organization.workspaces.list()]

    key_id, secret = new_key(team_server, ws.id, name="ci")
    key = admin.organization.api_keys.retrieve(key_id)
    assert key.name == "ci" and key.status == "active" and key.type == "api_key"
    assert key.scope.type == "workspace" and key.scope.workspace_id == ws.id
    assert key.partial_key_hint and secret not in key.partial_key_hint
    assert "key" not in (key.model_extra or {})
    assert [k.id for k in admin.organization.api_keys.list(workspace_id=ws.id)] == [key_id]
    assert admin.organization.api_keys.update(key_id, name="ci-2").name == "ci-2"
    assert [k.id for k in admin.organization.api_keys.list(status="inactive")] == []

    archived = admin.organization.workspaces.archive(ws.id)
    assert archived.archived_at is not None
    assert ws.id not in [w.id for w in admin.organization.workspaces.list()]
    assert ws.id in [w.id for w in admin.organization.workspaces.list(include_archived=True)]
    assert admin.organization.retrieve().type == "organization"

    with pytest.raises(anthropic.NotFoundError, match="not part of batchyard"):
        admin.organization.users.list()
    with pytest.raises(anthropic.NotFoundError):
        admin.organization.workspaces.retrieve("wrkspc_nope")
    with pytest.raises(anthropic.BadRequestError, match="default workspace"):
        admin.organization.workspaces.archive("wrkspc_default")


def test_version_and_beta_headers_as_the_hosted_api(team_server: Server) -> None:
    url = f"{team_server.base_url}/v1/messages/batches"
    key = {"x-api-key": HEADERS["x-api-key"]}
    missing = httpx.get(url, headers=key)
    assert missing.status_code == 400
    assert missing.json()["error"]["message"] == "anthropic-version: header is required"
    bad = httpx.get(url, headers={**key, "anthropic-version": "banana"})
    assert bad.status_code == 400 and "not a valid version" in bad.json()["error"]["message"]
    for version in ("2023-06-01", "2026-10-21", "2031-01-01"):
        assert httpx.get(url, headers={**key, "anthropic-version": version}).status_code == 200
    beta = httpx.get(url, headers={**HEADERS, "anthropic-beta": "message-batches-2024-09-24"})
    assert beta.status_code == 200
    unknown = httpx.get(url, headers={**HEADERS, "anthropic-beta": "files-api-2025-04-14,nope-1"})
    assert unknown.status_code == 400
    assert "Unexpected value(s) `nope-1`" in unknown.json()["error"]["message"]
    # /v1/models is shared with the OpenAI dialect: no version needed there.
    assert httpx.get(f"{team_server.base_url}/v1/models", headers=key).status_code == 200


def test_rate_limits_per_workspace(start_server: ServerFactory) -> None:
    server = start_server("--requests-per-minute", "3", "--batch-queued-requests", "1000")
    admin = client_for(server)
    msg = [{"role": "user", "content": "hi"}]
    seen = []
    for _ in range(3):
        raw = admin.messages.with_raw_response.create(
            model="claude-test",
            max_tokens=5,
            messages=msg,  # type: ignore[arg-type]
        )
        seen.append(raw.headers["anthropic-ratelimit-requests-remaining"])
        assert raw.headers["anthropic-ratelimit-requests-limit"] == "3"
        assert raw.headers["anthropic-workspace-id"] == "wrkspc_default"
    assert seen == ["2", "1", "0"]
    with pytest.raises(anthropic.RateLimitError) as limited:
        admin.messages.create(model="claude-test", max_tokens=5, messages=msg)  # type: ignore[arg-type]
    headers = limited.value.response.headers
    assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert int(headers["retry-after"]) >= 1
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    datetime.fromisoformat(headers["anthropic-ratelimit-requests-reset"])

    # Another workspace has its own allowance, and its own limits replace the defaults.
    tight = admin.organization.workspaces.create(
        name="tight",
        extra_body={"rate_limits": {"requests_per_minute": 1, "batch_queued_requests": 5}},
    )
    other = client_for(server, api_key=new_key(server, tight.id)[1])
    other.messages.create(model="claude-test", max_tokens=5, messages=msg)  # type: ignore[arg-type]
    with pytest.raises(anthropic.RateLimitError):
        other.messages.create(model="claude-test", max_tokens=5, messages=msg)  # type: ignore[arg-type]
    with pytest.raises(anthropic.RateLimitError, match="5 queued batch requests"):
        other.messages.batches.create(requests=make_requests(6, "q"))  # type: ignore[arg-type]
    assert other.messages.batches.list().data == []
    other.messages.batches.create(requests=make_requests(5, "q"))  # type: ignore[arg-type]


def test_usage_report_per_workspace_model_and_tier(team_server: Server) -> None:
    admin = client_for(team_server)
    ws = new_workspace(admin, "usage")
    user = client_for(team_server, api_key=new_key(team_server, ws)[1])
    batch = user.messages.batches.create(requests=make_requests(4, "u"))  # type: ignore[arg-type]
    wait_ended(user, batch.id)
    batch_in = batch_out = 0
    for line in user.messages.batches.results(batch.id):
        assert line.result.type == "succeeded"
        batch_in += line.result.message.usage.input_tokens
        batch_out += line.result.message.usage.output_tokens
    message = user.messages.create(
        model="claude-test",
        max_tokens=20,
        messages=[{"role": "user", "content": "count me"}],
    )
    with user.messages.stream(
        model="claude-test", max_tokens=20, messages=[{"role": "user", "content": "me too"}]
    ) as stream:
        streamed = stream.get_final_message()

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    r = httpx.get(
        f"{team_server.base_url}/v1/organizations/usage_report/messages",
        headers=HEADERS,
        params={
            "starting_at": today.isoformat(),
            "ending_at": (today + timedelta(days=1)).isoformat(),
            "group_by[]": ["workspace_id", "service_tier", "model"],
            "workspace_ids[]": [ws],
        },
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["has_more"] is False and len(report["data"]) == 1
    results = {row["service_tier"]: row for row in report["data"][0]["results"]}
    assert results["batch"]["requests"] == 4
    assert results["batch"]["uncached_input_tokens"] == batch_in
    assert results["batch"]["output_tokens"] == batch_out
    assert results["standard"]["requests"] == 2
    assert results["standard"]["uncached_input_tokens"] == (
        message.usage.input_tokens + streamed.usage.input_tokens
    )
    assert results["standard"]["output_tokens"] == (
        message.usage.output_tokens + streamed.usage.output_tokens
    )
    assert {row["workspace_id"] for row in results.values()} == {ws}
    assert {row["model"] for row in results.values()} == {"claude-test"}

    pages = []
    params: dict[str, object] = {
        "starting_at": today.isoformat(),
        "ending_at": (today + timedelta(days=1)).isoformat(),
        "bucket_width": "1h",
        "limit": 10,
        "workspace_ids[]": [ws],
    }
    while True:
        page = httpx.get(
            f"{team_server.base_url}/v1/organizations/usage_report/messages",
            headers=HEADERS,
            params=params,  # type: ignore[arg-type]
        ).json()
        pages.append(page)
        if not page["has_more"]:
            break
        params["page"] = page["next_page"]
    assert [len(p["data"]) for p in pages] == [10, 10, 4]
    hours = [b for p in pages for b in p["data"]]
    assert hours[0]["starting_at"] == today.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert sum(r["requests"] for b in hours for r in b["results"]) == 6
    bad = httpx.get(
        f"{team_server.base_url}/v1/organizations/usage_report/messages",
        headers=HEADERS,
        params={"starting_at": today.isoformat(), "bucket_width": "1m"},
    )
    assert bad.status_code == 400 and "per hour" in bad.json()["error"]["message"]


def test_small_batch_of_one_workspace_is_not_starved_by_anothers(
    start_server: ServerFactory,
) -> None:
    """Workspace A queues 20 batches (400 requests); workspace B's 10-request batch,
    submitted after them, gets half the engine and ends long before A's work."""
    server = start_server("--fake-latency-ms", "20", "--fake-capacity", "4")
    admin = client_for(server)
    a = client_for(server, api_key=new_key(server, new_workspace(admin, "big"))[1])
    b = client_for(server, api_key=new_key(server, new_workspace(admin, "small"))[1])
    big = [
        a.messages.batches.create(requests=make_requests(20, f"a{i}"))  # type: ignore[arg-type]
        for i in range(20)
    ]
    small = b.messages.batches.create(requests=make_requests(10, "b"))  # type: ignore[arg-type]
    wait_ended(b, small.id)
    left = sum(a.messages.batches.retrieve(x.id).request_counts.processing for x in big)
    # Fair across batches alone, B would have had 1/21 of the engine (A would be
    # ~200 requests further); fair across workspaces it had half.
    assert left >= 300, f"only {left} of A's 400 requests were still waiting"


def test_batch_rate_limit_covers_both_dialects(start_server: ServerFactory) -> None:
    import openai

    from tests.conftest import openai_client_for

    server = start_server("--batch-requests-per-minute", "2")
    client_for(server).messages.batches.list()
    oai = openai_client_for(server)
    oai.batches.list()
    with pytest.raises(openai.RateLimitError) as limited:
        oai.files.list()
    assert limited.value.response.headers["anthropic-ratelimit-requests-limit"] == "2"
    assert limited.value.code == "rate_limit_exceeded"
