"""A running batch's ETA (batchyard's `batchyard_eta` extension) through the official
SDKs with strict response validation, on the dashboard, in the metrics, the log and
the CLI's progress bar; and a batch that cannot finish in its window flagged early."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ServerFactory, client_for, make_requests, openai_client_for
from tests.integration.test_batches_sdk import wait_ended
from tests.integration.test_dashboard import signed_in
from tests.serverproc import ADMIN_KEY, BATCHYARD, Server


def eta_of(batch: Any) -> dict[str, Any] | None:
    """The extension field as the SDKs keep it (an unknown field: a plain dict)."""
    found = getattr(batch, "batchyard_eta", None)
    assert found is None or isinstance(found, dict)
    return found


def poll_until(what: str, check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"no {what} in {timeout} s"
        time.sleep(0.2)


def openai_batch(server: Server, tmp_path: Path, n: int) -> str:
    client = openai_client_for(server)
    lines = [
        {"custom_id": f"o{i}", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": "claude-test", "messages": [{"role": "user", "content": f"hi {i}"}]}}
        for i in range(n)
    ]  # fmt: skip
    path = tmp_path / "input.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    uploaded = client.files.create(file=path.open("rb"), purpose="batch")
    return client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    ).id


def test_a_running_batch_has_an_eta_in_the_future_and_not_at_risk(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    # Two at a time, 200 ms each: 10 requests/s shared by the two batches.
    server = start_server("--fake-latency-ms", "200", "--fake-capacity", "2")
    client, oai = client_for(server), openai_client_for(server)
    batch = client.messages.batches.create(requests=make_requests(40, "e"))  # type: ignore[arg-type]
    # 100: at 10/s at most it runs 10 s or more, in progress all through the checks below.
    oai_id = openai_batch(server, tmp_path, 100)

    def measured() -> dict[str, Any] | None:
        eta = eta_of(client.messages.batches.retrieve(batch.id))
        assert eta is not None  # present (maybe unknown) while the batch runs
        return eta if eta["ends_at"] is not None else None

    eta = poll_until("ETA", measured)
    now = datetime.now(UTC)
    ends = datetime.fromisoformat(eta["ends_at"].replace("Z", "+00:00"))
    assert ends > now
    assert (ends - now).total_seconds() < 30  # 40 at ~5/s: ~8 s in all
    assert 1.0 < eta["requests_per_second"] < 12.0
    assert eta["at_risk"] is False
    listed = [b for b in client.messages.batches.list().data if b.id == batch.id]
    assert eta_of(listed[0]) is not None

    # The OpenAI dialect's Batch object carries it too (Unix seconds), in retrieve and list.
    def oai_measured() -> dict[str, Any] | None:
        found = oai.batches.retrieve(oai_id)
        eta = eta_of(found) if found.status == "in_progress" else None
        return eta if eta and eta["ends_at"] is not None else None

    oai_eta = poll_until("OpenAI ETA", oai_measured)
    assert isinstance(oai_eta["ends_at"], int) and oai_eta["ends_at"] >= int(time.time()) - 1
    assert oai_eta["at_risk"] is False
    oai_listed = [b for b in oai.batches.list().data if b.id == oai_id]
    assert len(oai_listed) == 1 and oai_listed[0].status == "in_progress"
    listed_eta = eta_of(oai_listed[0])
    assert listed_eta is not None and isinstance(listed_eta["ends_at"], int)
    assert listed_eta["at_risk"] is False

    # The dashboard shows the same ETA, and no badge.
    web = signed_in(server, ADMIN_KEY)
    page = web.get(f"/ui/batches/{batch.id}").text
    if 'id="eta"' in page:  # (unless it ended meanwhile)
        shown = re.search(r'id="eta"[^>]*>([^<]+)', page)
        assert shown and re.search(r"\d+ (s|min)", shown.group(1)), shown
        assert 'id="at-risk"' not in page
    assert "status-at-risk" not in web.get("/ui/fragments/batches").text

    ended = wait_ended(client, batch.id)
    assert eta_of(ended) is None
    assert "batchyard_batches_at_risk 0.0" in httpx.get(f"{server.base_url}/metrics").text


def test_a_batch_that_cannot_finish_in_its_window_is_flagged_early(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    # One at a time, 200 ms each: 5/s; 150 requests need ~30 s, the window is 10 s.
    server = start_server(
        "--fake-latency-ms", "200", "--fake-capacity", "1",
        "--batch-expiry", "10s", "--housekeeping-interval", "0.2",
    )  # fmt: skip
    requests = tmp_path / "requests.jsonl"
    requests.write_text("".join(json.dumps(r) + "\n" for r in make_requests(150, "late")))
    env = {**os.environ, "BATCHYARD_URL": server.base_url, "BATCHYARD_API_KEY": ADMIN_KEY,
           "PYTHONUNBUFFERED": "1"}  # fmt: skip
    submit = subprocess.Popen(
        [*BATCHYARD, "submit", str(requests), "--wait"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert submit.stdout is not None
        batch_id = submit.stdout.readline().strip()
        assert batch_id.startswith("msgbatch_")
        client = client_for(server)

        def flagged() -> dict[str, Any] | None:
            eta = eta_of(client.messages.batches.retrieve(batch_id))
            return eta if eta and eta["at_risk"] else None

        eta = poll_until("at-risk flag", flagged, timeout=8.0)
        flagged_at = client.messages.batches.retrieve(batch_id)
        assert flagged_at.processing_status == "in_progress"  # early: before it expired
        ends = datetime.fromisoformat(eta["ends_at"].replace("Z", "+00:00"))
        assert ends > flagged_at.expires_at

        def counted() -> bool:  # the gauge works from the last sample: within a couple of s
            metrics = httpx.get(f"{server.base_url}/metrics").text
            return "batchyard_batches_at_risk 1.0" in metrics

        poll_until("at-risk gauge", counted, timeout=5.0)
        web = signed_in(server, ADMIN_KEY)
        listing = web.get("/ui/fragments/batches").text
        assert "status-at-risk" in listing and batch_id in listing
        assert 'id="at-risk"' in web.get(f"/ui/batches/{batch_id}").text
        assert server.log().count(f"batch {batch_id} is at risk") == 1

        _, err = submit.communicate(timeout=60)
    finally:
        if submit.poll() is None:
            submit.kill()
            submit.communicate()
    assert submit.returncode == 0, err
    assert f"{batch_id} may not finish before it expires" in err
    assert err.count("may not finish before it expires") == 1
    ended = wait_ended(client, batch_id)
    assert ended.request_counts.expired > 0  # the flag was right
    assert server.log().count(f"batch {batch_id} is at risk") == 1
