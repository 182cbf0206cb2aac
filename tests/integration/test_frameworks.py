"""The client libraries people build on the SDKs — LangChain (`ChatAnthropic`,
`ChatOpenAI`, plain and on the Responses API), pydantic-ai (Anthropic, OpenAI chat and
OpenAI Responses models), instructor and LiteLLM — each unchanged but for base URL,
key and model, on the embedded model: text, streaming, structured output in each
library's default mode, tools the model chooses (`auto`) and forced ones, a tool loop.

What the library hands back is asserted (the parsed type, the named tool, arguments of
the right shape), not what the 135M model says. The libraries pin the SDKs differently
from the main venv, so they live in venvs of their own (`make test-deps`) and
tests/frameworks/drive.py runs each one's cases in one process, printing JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.databases import new_database
from tests.integration.test_local_engine import MODEL
from tests.serverproc import ADMIN_KEY, Server
from tests.vllm import SERVED_MODEL, VLLM

DRIVE = Path(__file__).parents[1] / "frameworks" / "drive.py"
VENVS = {"pydantic-ai": Path(sys.prefix) / "pydantic-ai"}
DEFAULT_VENV = Path(sys.prefix) / "frameworks"

CASES = {
    "langchain-anthropic": ["text", "stream", "batch", "structured", "tools_auto", "tool_loop"],
    "langchain-openai": [
        "text", "stream", "structured", "tools_auto", "tool_loop",
        "text_responses", "stream_responses", "structured_responses", "tools_auto_responses",
    ],
    "pydantic-ai": [
        "anthropic:text", "anthropic:stream", "anthropic:structured", "anthropic:tools",
        "openai:text", "openai:structured", "openai:tools",
        "openai-responses:text", "openai-responses:stream", "openai-responses:structured",
        "openai-responses:tools",
    ],
    "instructor": ["openai", "openai_json", "anthropic"],
    "litellm": [
        "anthropic:text", "anthropic:stream", "anthropic:tools",
        "openai:text", "openai:stream", "openai:tools",
    ],
}  # fmt: skip
ALL = [(framework, case) for framework, cases in CASES.items() for case in cases]


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    d = tmp_path_factory.mktemp("frameworks")
    server = Server(
        new_database(d, "db"), d / "server.log",
        ["--engine", "local", "--capacity", "8", "--context-tokens", "1024"],
    )  # fmt: skip
    yield server
    server.stop()


class Runs(dict[str, dict[str, Any]]):
    """Each framework's cases against `server`, run once (on first use) in its venv."""

    def __init__(self, server: Server, cases: dict[str, list[str]], model: str = MODEL) -> None:
        super().__init__()
        self.server, self.cases, self.model = server, cases, model

    def __missing__(self, framework: str) -> dict[str, Any]:
        python = VENVS.get(framework, DEFAULT_VENV) / "bin" / "python"
        if not python.exists():
            if os.environ.get("CI"):
                pytest.fail(f"{python} is missing: run `make test-deps`")
            pytest.skip(f"{framework} is not installed at {python} (`make test-deps`)")
        args = [str(python), str(DRIVE), framework, self.server.base_url, ADMIN_KEY, self.model]
        finished = subprocess.run(
            [*args, *self.cases[framework]], capture_output=True, text=True, timeout=600,
            env={**os.environ, "PYTHONPATH": ""},
        )  # fmt: skip
        assert finished.returncode == 0, finished.stderr[-3000:]
        self[framework] = json.loads(finished.stdout.strip().splitlines()[-1])
        return self[framework]


@pytest.fixture(scope="module")
def ran(local: Server) -> Runs:
    return Runs(local, CASES)


def _calls_ok(calls: list[Any]) -> bool:
    return all(name == "get_weather" and isinstance(args.get("city"), str) for name, args in calls)


@pytest.mark.parametrize(("framework", "case"), ALL)
def test_a_library_gets_what_it_asked_for(ran: Runs, framework: str, case: str) -> None:
    check(framework, case, ran[framework][case])


def check(framework: str, case: str, out: dict[str, Any]) -> None:
    assert "error" not in out, out
    kind = case.split(":")[-1].removesuffix("_responses")
    if kind in ("text", "stream"):
        assert isinstance(out["text"], str) and out["text"].strip(), out
    elif kind == "batch":
        assert len(out["texts"]) == 2 and all(t.strip() for t in out["texts"])
    elif kind in ("structured", "openai", "openai_json", "anthropic"):  # instructor's are too
        assert out["type"] == "City"
        assert all(isinstance(out["value"][k], str) for k in ("name", "country"))
    elif kind == "tools_auto":
        # a conversation that called before: the model calls again, within the schema
        assert out["tool_calls"] and _calls_ok(out["tool_calls"]), out
    elif kind == "tool_loop":
        assert out["tool_calls"] and _calls_ok(out["tool_calls"])
        assert out["text"] or _calls_ok(out["then"])  # then an answer, or another call
    elif kind == "tools":
        assert _calls_ok(out["tool_calls"]), out
        if framework == "litellm":  # forced: a call there must be
            assert out["tool_calls"]
        else:  # an agent run ends in text, calling the tool or not
            assert isinstance(out["text"], str) and out["text"]
    else:
        raise AssertionError(f"no check for {case}")


@pytest.mark.parametrize(
    ("framework", "plain", "streamed"),
    [("langchain-anthropic", "text", "stream"), ("langchain-openai", "text", "stream"),
     ("langchain-openai", "text_responses", "stream_responses"),
     ("pydantic-ai", "anthropic:text", "anthropic:stream"),
     ("pydantic-ai", "openai-responses:text", "openai-responses:stream"),
     ("litellm", "anthropic:text", "anthropic:stream"), ("litellm", "openai:text", "openai:stream")],
)  # fmt: skip
def test_a_stream_adds_up_to_the_plain_answer(
    ran: Runs, framework: str, plain: str, streamed: str
) -> None:
    # temperature 0, the same prompt: the same answer, whole or in pieces
    assert ran[framework][streamed]["text"] == ran[framework][plain]["text"]


# --- the same libraries through batchyard's openai engine in front of a real vLLM ------

ON_VLLM = {
    "langchain-anthropic": ["text"],
    "langchain-openai": ["stream", "structured", "structured_responses"],
    "pydantic-ai": ["openai-responses:text"],
    "instructor": ["openai_json"],
    "litellm": ["anthropic:stream", "openai:text"],
}
"""Not the modes that force a call to a tool without `strict`: this vLLM (0.x CPU wheel,
hermes parser) does not decode such a call to the tool's schema, and answers
`"arguments": "\\"Paris\\""` for a `get_weather(city)` asked directly (batchyard then
answers a 500, the upstream's reply being malformed). On the embedded engine above the
same modes pass."""


@pytest.fixture(scope="module")
def on_vllm(vllm: VLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    d = tmp_path_factory.mktemp("frameworks-vllm")
    server = Server(
        new_database(d, "db"), d / "server.log",
        ["--engine", "openai", "--upstream-url", vllm.base_url, "--model", SERVED_MODEL],
    )  # fmt: skip
    yield Runs(server, ON_VLLM, SERVED_MODEL)
    server.stop()


@pytest.mark.vllm
@pytest.mark.parametrize(
    ("framework", "case"), [(f, c) for f, cases in ON_VLLM.items() for c in cases]
)
def test_a_library_gets_what_it_asked_for_on_vllm(on_vllm: Runs, framework: str, case: str) -> None:
    check(framework, case, on_vllm[framework][case])
