"""The dashboard's rules over plain HTTP against a real server: who may see what,
forms that change things, escaping, errors as pages, and the results download."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import anthropic
import httpx
import pytest

from tests.conftest import (
    ServerFactory,
    client_for,
    make_requests,
    new_key,
    new_workspace,
    openai_client_for,
    workspace_key,
)
from tests.integration.test_batches_sdk import wait_ended
from tests.serverproc import ADMIN_KEY, Server, WorkerProc


def signed_in(server: Server, key: str) -> httpx.Client:
    """A browser-like client that signed in with `key` (the cookie jar keeps the session)."""
    web = httpx.Client(base_url=server.base_url)
    r = web.post("/ui/login", data={"key": key})
    assert r.status_code == 303 and r.headers["location"] == "/ui"
    return web


def csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found, "no form with a CSRF token on the page"
    return found.group(1)


def test_signing_in_sets_a_strict_httponly_cookie_and_pages_need_it(
    start_server: ServerFactory,
) -> None:
    server = start_server()
    key = workspace_key(server, "team")
    anonymous = httpx.Client(base_url=server.base_url)
    assert anonymous.get("/").headers["location"] == "/ui"
    page = anonymous.get("/ui")
    assert page.status_code == 200 and 'id="sign-in"' in page.text and "Batches" not in page.text
    assert anonymous.get("/ui/fragments/batches").status_code == 401

    refused = anonymous.post("/ui/login", data={"key": "sk-by-api01-wrong"})
    assert refused.status_code == 401 and "not accepted: invalid x-api-key" in refused.text
    assert "set-cookie" not in refused.headers

    elsewhere = anonymous.post(
        "/ui/login", data={"key": key}, headers={"origin": "https://evil.example"}
    )
    assert elsewhere.status_code == 403 and "set-cookie" not in elsewhere.headers
    r = anonymous.post("/ui/login", data={"key": key}, headers={"origin": server.base_url})
    cookie = r.headers["set-cookie"].lower()
    for attribute in ("httponly", "samesite=strict", "path=/ui"):
        assert attribute in cookie
    page = anonymous.get("/ui")
    assert page.status_code == 200 and "<h1>Batches</h1>" in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert anonymous.get("/ui/fragments/engines").status_code == 200


def test_a_workspace_sees_only_its_own_batches(start_server: ServerFactory) -> None:
    server = start_server("--fake-latency-ms", "200", "--fake-capacity", "1")
    mine, theirs = workspace_key(server, "mine"), workspace_key(server, "theirs")
    their_batch = client_for(server, api_key=theirs).messages.batches.create(
        requests=make_requests(50)  # type: ignore[arg-type]
    )
    web = signed_in(server, mine)
    assert their_batch.id not in web.get("/ui").text
    assert their_batch.id not in web.get("/ui/fragments/batches").text
    for path in ("", "/results/req-0", "/results.jsonl"):
        r = web.get(f"/ui/batches/{their_batch.id}{path}")
        assert r.status_code == 404 and their_batch.id in r.text  # "No batch … in workspace"
    assert web.get(f"/ui/fragments/batches/{their_batch.id}").status_code == 404
    token = csrf(web.get("/ui").text)
    r = web.post(f"/ui/batches/{their_batch.id}/cancel", data={"csrf": token})
    assert r.status_code == 404
    still = client_for(server, api_key=theirs).messages.batches.retrieve(their_batch.id)
    assert still.processing_status == "in_progress"

    theirs_web = signed_in(server, theirs)
    assert their_batch.id in theirs_web.get("/ui").text


def test_cancel_needs_the_forms_token_and_this_origin(start_server: ServerFactory) -> None:
    server = start_server("--fake-latency-ms", "200", "--fake-capacity", "1")
    key = workspace_key(server, "team")
    client = client_for(server, api_key=key)
    batch = client.messages.batches.create(requests=make_requests(50))  # type: ignore[arg-type]
    web = signed_in(server, key)
    page = web.get(f"/ui/batches/{batch.id}")
    assert 'id="cancel-batch"' in page.text and 'id="delete-batch"' not in page.text
    token = csrf(page.text)
    path = f"/ui/batches/{batch.id}/cancel"

    assert web.post(path, data={}).status_code == 403
    assert web.post(path, data={"csrf": "0" * 40}).status_code == 403
    evil = web.post(path, data={"csrf": token}, headers={"origin": "https://evil.example"})
    assert evil.status_code == 403 and "another site" in evil.text
    assert client.messages.batches.retrieve(batch.id).processing_status == "in_progress"

    # Another key's token does not fit this session either.
    other = signed_in(server, workspace_key(server, "other"))
    other_token = csrf(other.get("/ui").text)
    assert other_token != token
    assert web.post(path, data={"csrf": other_token}).status_code == 403

    done = web.post(path, data={"csrf": token}, headers={"origin": server.base_url})
    assert done.status_code == 303 and done.headers["location"] == f"/ui/batches/{batch.id}"
    assert client.messages.batches.retrieve(batch.id).processing_status in ("canceling", "ended")
    wait_ended(client, batch.id)
    page = web.get(f"/ui/batches/{batch.id}")
    assert 'id="cancel-batch"' not in page.text and ">canceled<" in page.text

    # An ended batch can be deleted from its page, with the same token rules.
    assert 'id="delete-batch"' in page.text
    assert web.post(f"/ui/batches/{batch.id}/delete", data={}).status_code == 403
    gone = web.post(f"/ui/batches/{batch.id}/delete", data={"csrf": token})
    assert gone.status_code == 303 and gone.headers["location"] == "/ui"
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(batch.id)
    assert batch.id not in web.get("/ui").text


def test_a_revoked_key_is_signed_out_on_its_next_page(start_server: ServerFactory) -> None:
    server = start_server()
    admin = client_for(server)
    key_id, key = new_key(server, new_workspace(admin, "short-lived"))
    web = signed_in(server, key)
    assert web.get("/ui").status_code == 200
    admin.organization.api_keys.update(key_id, status="inactive")
    page = web.get("/ui")
    assert page.status_code == 401 and "This API key is inactive" in page.text
    assert 'id="sign-in"' in page.text
    assert web.get("/ui/fragments/batches").status_code == 401


def test_an_admin_picks_the_workspace_to_watch(start_server: ServerFactory) -> None:
    server = start_server()
    admin = client_for(server)
    workspace = new_workspace(admin, "elsewhere")
    _, key = new_key(server, workspace)
    batch = client_for(server, api_key=key).messages.batches.create(
        requests=make_requests(3)  # type: ignore[arg-type]
    )
    web = signed_in(server, ADMIN_KEY)
    page = web.get("/ui").text
    assert batch.id not in page and 'name="workspace"' in page  # the default workspace first
    r = web.post("/ui/workspace", data={"csrf": csrf(page), "workspace": workspace})
    assert r.status_code == 303
    page = web.get("/ui").text
    assert batch.id in page and 'id="workspace-name">elsewhere<' in page
    # A workspace key gets no picker, and a picked workspace must be its own.
    mine = signed_in(server, key)
    page = mine.get("/ui").text
    assert 'name="workspace"' not in page
    r = mine.post("/ui/workspace", data={"csrf": csrf(page), "workspace": "wrkspc_default"})
    assert r.status_code == 403


def test_results_page_escapes_what_users_sent_and_rejects_bad_queries(
    start_server: ServerFactory,
) -> None:
    server = start_server()
    key = workspace_key(server, "team")
    client = client_for(server, api_key=key)
    requests = make_requests(3)
    requests[0]["params"]["model"] = "<img src=x onerror=alert(1)>"  # type: ignore[index]
    requests[1]["params"]["messages"][0]["content"] = "<script>alert(2)</script>"  # type: ignore[index]
    batch = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    wait_ended(client, batch.id)
    web = signed_in(server, key)

    page = web.get(f"/ui/batches/{batch.id}").text
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page and "<script>alert" not in page
    result = web.get(f"/ui/batches/{batch.id}/results/req-1").text
    assert "&lt;script&gt;" in result and "<script>alert" not in result

    for query, said in (("page=abc", "page:"), ("page=0", "page:"), ("kind=odd", "kind:")):
        r = web.get(f"/ui/batches/{batch.id}?{query}")
        assert r.status_code == 400 and said in r.text and "Traceback" not in r.text
    assert web.get("/ui?before=x").status_code == 400
    assert web.get(f"/ui/batches/{batch.id}/results/nope").status_code == 404


def test_download_is_the_results_file(start_server: ServerFactory) -> None:
    server = start_server()
    key = workspace_key(server, "team")
    client = client_for(server, api_key=key)
    batch = client.messages.batches.create(requests=make_requests(120))  # type: ignore[arg-type]
    wait_ended(client, batch.id)
    web = signed_in(server, key)
    got = web.get(f"/ui/batches/{batch.id}/results.jsonl")
    assert got.status_code == 200
    assert f'filename="{batch.id}_results.jsonl"' in got.headers["content-disposition"]
    api = httpx.get(
        f"{server.base_url}/v1/messages/batches/{batch.id}/results",
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
    )
    assert sorted(got.text.splitlines()) == sorted(api.text.splitlines())
    assert len(got.text.splitlines()) == 120


@pytest.mark.parametrize("path", ["/ui", "/ui/fragments/engines", "/ui/fragments/usage"])
def test_without_auth_the_dashboard_needs_no_key(start_server: ServerFactory, path: str) -> None:
    server = start_server("--no-auth")
    r = httpx.get(server.base_url + path)
    assert r.status_code == 200 and "sign-in" not in r.text


def test_admins_see_every_worker_and_when_one_stops(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    server = start_server()
    worker = WorkerProc(server.database, tmp_path / "worker.log", ["--status-interval", "0.2"])
    admin = signed_in(server, ADMIN_KEY)

    def states() -> dict[str, str]:
        """The Workers panel as {"standalone" or "in server": state}, by the row's PID."""
        page = admin.get("/ui/fragments/workers")
        assert page.status_code == 200
        rows = re.findall(r'data-state="([\w ]+)">(.*?)</tr>', page.text, re.S)
        pid = f'<td class="n">{worker.popen.pid}</td>'
        return {("standalone" if pid in cells else "in server"): state for state, cells in rows}

    deadline = time.monotonic() + 20
    while states() != {"standalone": "running", "in server": "running"}:
        assert time.monotonic() < deadline, states()
        time.sleep(0.1)
    assert 'id="workers"' in admin.get("/ui").text

    worker.stop()  # SIGTERM: it drains, then reports itself stopped
    while states() != {"standalone": "stopped", "in server": "running"}:
        assert time.monotonic() < deadline, states()
        time.sleep(0.1)

    member = signed_in(server, workspace_key(server, "team"))
    assert 'id="workers"' not in member.get("/ui").text
    assert member.get("/ui/fragments/workers").status_code == 403


def test_forms_behind_a_proxy_accept_the_public_origin(start_server: ServerFactory) -> None:
    server = start_server("--public-base-url", "https://batches.example.com")
    key = workspace_key(server, "team")
    client = client_for(server, api_key=key)
    web = signed_in(server, key)
    for origin, headers in (
        ("https://batches.example.com", {}),  # --public-base-url
        ("https://proxy.example.org", {"x-forwarded-host": "proxy.example.org"}),
    ):
        batch = client.messages.batches.create(requests=make_requests(3))  # type: ignore[arg-type]
        token = csrf(web.get(f"/ui/batches/{batch.id}").text)
        r = web.post(
            f"/ui/batches/{batch.id}/cancel",
            data={"csrf": token},
            headers={"origin": origin, **headers},
        )
        assert r.status_code == 303, (origin, r.text)
    batch = client.messages.batches.create(requests=make_requests(3))  # type: ignore[arg-type]
    token = csrf(web.get(f"/ui/batches/{batch.id}").text)
    r = web.post(
        f"/ui/batches/{batch.id}/cancel",
        data={"csrf": token},
        headers={"origin": "https://x.example"},
    )
    assert r.status_code == 403


def test_filter_the_list_and_open_a_batch_by_either_dialects_id(
    start_server: ServerFactory,
) -> None:
    server = start_server("--fake-latency-ms", "300", "--fake-capacity", "1")
    key = workspace_key(server, "team")
    client = client_for(server, api_key=key)
    running = client.messages.batches.create(requests=make_requests(20))  # type: ignore[arg-type]
    ended = client.messages.batches.create(requests=make_requests(2))  # type: ignore[arg-type]
    client.messages.batches.cancel(ended.id)
    wait_ended(client, ended.id)
    lines = "\n".join(
        json.dumps(
            {
                "custom_id": f"o-{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "claude-test", "messages": [{"role": "user", "content": "hi"}]},
            }
        )
        for i in range(2)
    )
    oai = openai_client_for(server, api_key=key)
    upload = oai.files.create(file=("in.jsonl", lines.encode()), purpose="batch")
    openai_batch = oai.batches.create(
        input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    web = signed_in(server, key)

    page = web.get("/ui").text
    assert "<title>Batches · batchyard</title>" in page
    assert running.id in page and ended.id in page and openai_batch.id in page
    only_running = web.get("/ui?status=running").text
    assert running.id in only_running and ended.id not in only_running
    only_ended = web.get("/ui/fragments/batches?status=ended&before=").text
    assert ended.id in only_ended and running.id not in only_ended
    assert web.get("/ui?status=odd").status_code == 400

    r = web.get("/ui/find", params={"id": running.id})
    assert r.status_code == 303 and r.headers["location"] == f"/ui/batches/{running.id}"
    r = web.get("/ui/find", params={"id": openai_batch.id})
    inner = r.headers["location"].rsplit("/", 1)[-1]
    assert r.status_code == 303 and inner.startswith("msgbatch_")
    assert f"OpenAI {openai_batch.id}" in web.get(f"/ui/batches/{inner}").text
    for unknown in ("msgbatch_nope", "batch_nope"):
        assert web.get("/ui/find", params={"id": unknown}).status_code == 404


def test_the_dashboard_under_a_path_prefix(start_server: ServerFactory) -> None:
    server = start_server("--path-prefix", "/by")
    key = workspace_key(server, "team")
    client = client_for(server, api_key=key)
    batch = client.messages.batches.create(requests=make_requests(3))  # type: ignore[arg-type]
    wait_ended(client, batch.id)
    web = httpx.Client(base_url=server.base_url)
    assert web.get("/by/").headers["location"] == "/by/ui"
    login = web.get("/by/ui/login").text
    assert 'action="/by/ui/login"' in login and 'href="/by/ui/static/ui.css"' in login
    r = web.post("/by/ui/login", data={"key": key})
    assert r.status_code == 303 and r.headers["location"] == "/by/ui"
    assert "path=/by/ui" in r.headers["set-cookie"].lower()
    page = web.get("/by/ui").text
    assert f'href="/by/ui/batches/{batch.id}"' in page
    assert 'data-refresh="/by/ui/fragments/batches' in page and 'data-login="/by/ui/login"' in page
    assert web.get("/by/ui/static/ui.js").status_code == 200
    detail = web.get(f"/by/ui/batches/{batch.id}")
    assert detail.status_code == 200 and f'action="/by/ui/batches/{batch.id}/delete"' in detail.text
    gone = web.post(f"/by/ui/batches/{batch.id}/delete", data={"csrf": csrf(detail.text)})
    assert gone.status_code == 303 and gone.headers["location"] == "/by/ui"
    # Still at the root too, like the API.
    assert httpx.get(f"{server.base_url}/ui/login").status_code == 200
