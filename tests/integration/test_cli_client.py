"""`batchyard submit --wait` and `batchyard batches …` end to end against a real server."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.conftest import make_requests
from tests.serverproc import ADMIN_KEY, BATCHYARD, Server


def cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BATCHYARD_URL": server.base_url, "BATCHYARD_API_KEY": ADMIN_KEY}
    return subprocess.run([*BATCHYARD, *args], capture_output=True, text=True, timeout=120, env=env)


def test_submit_wait_writes_the_results_file(server: Server, tmp_path: Path) -> None:
    requests = tmp_path / "requests.jsonl"
    requests.write_text("".join(json.dumps(r) + "\n" for r in make_requests(12, "cli")))
    done = cli(server, "submit", str(requests), "--wait")
    assert done.returncode == 0, done.stderr
    batch_id = done.stdout.strip()
    assert batch_id.startswith("msgbatch_") and "12 succeeded" in done.stderr
    results = [
        json.loads(x) for x in (tmp_path / "requests.results.jsonl").read_text().splitlines()
    ]
    assert sorted(r["custom_id"] for r in results) == sorted(f"cli-{i}" for i in range(12))
    assert all(r["result"]["type"] == "succeeded" for r in results)

    listed = cli(server, "batches", "list")
    assert listed.returncode == 0 and batch_id in listed.stdout
    shown = json.loads(cli(server, "batches", "show", batch_id).stdout)
    assert shown["processing_status"] == "ended"
    out = tmp_path / "again.jsonl"
    assert cli(server, "batches", "results", batch_id, "-o", str(out)).returncode == 0
    assert len(out.read_text().splitlines()) == 12
    deleted = cli(server, "batches", "delete", batch_id)
    assert deleted.returncode == 0 and "message_batch_deleted" in deleted.stdout
    missing = cli(server, "batches", "show", batch_id)
    assert missing.returncode != 0 and "not found" in missing.stderr.lower()


def test_submit_an_openai_input_file(server: Server, tmp_path: Path) -> None:
    lines = [
        {"custom_id": f"o{i}", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": "claude-test", "messages": [{"role": "user", "content": f"hi {i}"}]}}
        for i in range(5)
    ]  # fmt: skip
    path = tmp_path / "openai.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    done = cli(server, "submit", str(path), "--wait", "-o", str(tmp_path / "out.jsonl"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("batch_") and "completed" in done.stderr
    out = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert sorted(x["custom_id"] for x in out) == [f"o{i}" for i in range(5)]
    assert all(x["response"]["status_code"] == 200 for x in out)


def test_doctor_says_what_is_wrong(server: Server, tmp_path: Path) -> None:
    env = {**os.environ, "BATCHYARD_ADMIN_KEY": ""}
    db = str(tmp_path / "doctor.sqlite")
    bad = subprocess.run(
        [*BATCHYARD, "doctor", "--database", db, "--engine", "openai", "--model", "m",
         "--upstream-url", "http://127.0.0.1:9/v1"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert bad.returncode == 1
    assert "FAIL  keys: none yet" in bad.stdout
    assert "FAIL  engine openai: openai upstream for m" in bad.stdout
    subprocess.run([*BATCHYARD, "keys", "create", "--admin", "--database", db], check=True,
                   capture_output=True, env=env)  # fmt: skip
    good = subprocess.run(
        [*BATCHYARD, "doctor", "--database", db, "--engine", "fake", "--base-url", server.base_url],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert good.returncode == 0, good.stdout
    assert "ok    server:" in good.stdout and "0 to fix" in good.stdout
