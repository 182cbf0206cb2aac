"""Legacy Text Completions with a real 0.x SDK (`client.completions.create`).

The 0.x SDK cannot share the venv with the 2.x one the rest of the suite uses: `make
install` puts it in its own folder, and each test drives it in a subprocess that prints
what it got as JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.serverproc import ADMIN_KEY, Server

SDK0 = Path(sys.prefix) / "anthropic-0"
"""Where `make install` puts the 0.x SDK (`anthropic==0.40.0`)."""

PROMPT = "\n\nHuman: Tell me about the sea and the sky\n\nAssistant:"

_SCRIPT = """
import json, sys
import anthropic

base_url, api_key, kind, kwargs = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
client = anthropic.Anthropic(base_url=base_url, api_key=api_key, max_retries=0,
                             _strict_response_validation=True)
try:
    if kind == "create":
        out = client.completions.create(**kwargs).model_dump()
    else:
        out = [event.model_dump() for event in client.completions.create(stream=True, **kwargs)]
except anthropic.APIStatusError as exc:
    out = {"error": type(exc).__name__, "status": exc.status_code, "body": exc.body}
print(json.dumps({"version": anthropic.__version__, "out": out}))
"""


def sdk0(server: Server, kind: str, **kwargs: Any) -> Any:
    """What the 0.x SDK's `client.completions.create(**kwargs)` returned (`kind`
    "create"), or the events of its stream ("stream"), or the error it raised."""
    if not SDK0.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"the 0.x SDK is missing from {SDK0}: run `make install`")
        pytest.skip(f"the 0.x SDK is not installed in {SDK0} (`make install` puts it there)")
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, server.base_url, ADMIN_KEY, kind, json.dumps(kwargs)],
        env={**os.environ, "PYTHONPATH": str(SDK0)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(done.stdout)
    assert result["version"].startswith("0.")
    return result["out"]


def test_create(server: Server) -> None:
    answer = sdk0(
        server, "create", model="claude-test", max_tokens_to_sample=100, prompt="Be brief." + PROMPT
    )
    assert answer["type"] == "completion" and answer["id"].startswith("compl_")
    assert answer["model"] == "claude-test"
    assert answer["completion"].endswith("to: Tell me about the sea and the sky")
    assert answer["stop_reason"] == "stop_sequence" and answer["stop"] is None


def test_stream_matches_the_plain_call(server: Server) -> None:
    plain = sdk0(server, "create", model="claude-test", max_tokens_to_sample=100, prompt=PROMPT)
    events = sdk0(server, "stream", model="claude-test", max_tokens_to_sample=100, prompt=PROMPT)
    assert len(events) > 2  # it did arrive in pieces
    assert {e["type"] for e in events} == {"completion"}
    assert len({e["id"] for e in events}) == 1
    assert "".join(e["completion"] for e in events) == plain["completion"]
    assert [e["stop_reason"] for e in events[:-1]] == [None] * (len(events) - 1)
    assert events[-1]["stop_reason"] == "stop_sequence"


def test_max_tokens_and_stop_sequence(server: Server) -> None:
    short = sdk0(server, "create", model="claude-test", max_tokens_to_sample=3, prompt=PROMPT)
    assert short["stop_reason"] == "max_tokens" and short["stop"] is None
    assert len(short["completion"].split()) == 3
    events = sdk0(server, "stream", model="claude-test", max_tokens_to_sample=3, prompt=PROMPT)
    assert events[-1]["stop_reason"] == "max_tokens"
    stopped = sdk0(
        server,
        "create",
        model="claude-test",
        max_tokens_to_sample=50,
        prompt=PROMPT,
        stop_sequences=["about"],
    )
    assert stopped["stop_reason"] == "stop_sequence" and stopped["stop"] == "about"
    assert "about" not in stopped["completion"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt": "Tell me about the sea"}, 'prompt must start with "\\n\\nHuman:" turn'),
        ({"prompt": "\n\nHuman: Tell me"}, 'prompt must end with "\\n\\nAssistant:" turn'),
        ({"prompt": PROMPT, "extra_body": {"messages": []}}, "messages: Extra inputs"),
    ],
)
def test_bad_requests(server: Server, kwargs: dict[str, Any], message: str) -> None:
    error = sdk0(server, "create", model="claude-test", max_tokens_to_sample=10, **kwargs)
    assert (error["error"], error["status"]) == ("BadRequestError", 400)
    assert error["body"]["type"] == "error"
    assert error["body"]["error"]["type"] == "invalid_request_error"
    assert error["body"]["error"]["message"].startswith(message)


def test_unknown_model(server: Server) -> None:
    error = sdk0(server, "stream", model="no-such-model", max_tokens_to_sample=10, prompt=PROMPT)
    assert (error["error"], error["status"]) == ("NotFoundError", 404)
