"""The OpenAI-compatible and Anthropic upstream engines against scripted loopback servers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from starlette.requests import Request
from starlette.responses import Response

from tests.conftest import ServerFactory, client_for, openai_client_for
from tests.integration.test_batches_sdk import wait_ended
from tests.integration.test_metrics import samples
from tests.serverproc import Server, free_port
from tests.stubs import Stub

FAST_RETRIES = ["--retry-base", "0.01", "--max-attempts", "4", "--poll-interval", "0.05"]
TOOL = {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}


@pytest.fixture
def stub() -> Iterator[Stub]:
    with Stub(api_key="sk-upstream") as s:
        yield s


def openai_server(start_server: ServerFactory, stub: Stub, *extra: str) -> Server:
    return start_server(
        "--engine", "openai", "--upstream-url", f"{stub.url}/v1", "--upstream-key", "sk-upstream",
        "--model", "gpt-test=upstream-model", "--upstream-timeout", "1", *FAST_RETRIES, *extra,
    )  # fmt: skip


def ask(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": "gpt-test",
        "max_tokens": 32,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def run_batch(client: anthropic.Anthropic, requests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    batch = client.messages.batches.create(
        requests=[{"custom_id": k, "params": v} for k, v in requests.items()]  # type: ignore[typeddict-item]
    )
    wait_ended(client, batch.id, timeout=60)
    return {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}


def test_openai_engine_interactive_translation(start_server: ServerFactory, stub: Stub) -> None:
    client = client_for(openai_server(start_server, stub))
    message = client.messages.create(
        model="gpt-test", max_tokens=32, system="Be brief.", extra_body={"temperature": 0.0},
        messages=[{"role": "user", "content": "echo"}], stop_sequences=["END"],
    )  # fmt: skip
    sent = json.loads(message.content[0].text)  # type: ignore[union-attr]
    assert sent == {
        "model": "upstream-model",
        "max_tokens": 32,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "echo"},
        ],
        "stop": ["END"],
        "temperature": 0.0,
    }
    assert message.model == "gpt-test"
    assert message.usage.input_tokens == 12 and message.stop_reason == "end_turn"


def test_openai_engine_tool_round_trip(start_server: ServerFactory, stub: Stub) -> None:
    client = client_for(openai_server(start_server, stub))
    message = client.messages.create(
        model="gpt-test", max_tokens=32, tools=[TOOL],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "tool"}],
    )  # fmt: skip
    assert message.stop_reason == "tool_use"
    [call] = message.content
    assert call.type == "tool_use" and call.name == "get_weather" and call.input == {"city": "Oslo"}
    assert stub.received[-1]["tools"][0]["function"]["name"] == "get_weather"


def test_openai_engine_batch_failure_paths(start_server: ServerFactory, stub: Stub) -> None:
    client = client_for(openai_server(start_server, stub))
    results = run_batch(
        client,
        {
            "plain": ask("hello"),
            "429s": ask("fail-429-2"),
            "500s": ask("fail-500-2"),
            "bad": ask("bad-400"),
            "malformed": ask("malformed"),
            "slow": ask("slow-300"),
            "too-slow": ask("slow-3000"),
        },
    )
    for ok in ("plain", "429s", "500s", "slow"):
        assert results[ok].type == "succeeded", (ok, results[ok])
    assert results["429s"].message.content[0].text == "stub reply: fail-429-2"
    assert stub.calls["fail-429-2"] == 3 and stub.calls["fail-500-2"] == 3

    bad = results["bad"].error.error
    assert results["bad"].type == "errored" and bad.type == "invalid_request_error"
    assert "bad thing in request" in bad.message and stub.calls["bad-400"] == 1  # 4xx is final

    malformed = results["malformed"].error.error
    assert malformed.type == "api_error" and "malformed" in malformed.message
    assert stub.calls["malformed"] == 4  # the whole retry budget

    assert results["too-slow"].type == "errored"
    assert results["too-slow"].error.error.type == "timeout_error"


def test_openai_engine_interactive_errors(start_server: ServerFactory, stub: Stub) -> None:
    client = client_for(openai_server(start_server, stub))
    with pytest.raises(anthropic.RateLimitError) as limited:
        client.messages.create(**ask("fail-429-9"))
    assert limited.value.response.headers["retry-after"] == "1"
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.messages.create(**ask("bad-400"))
    assert "bad thing in request" in bad.value.message
    with pytest.raises(anthropic.InternalServerError):
        client.messages.create(**ask("fail-500-1"))
    assert client.messages.create(**ask("fail-500-1")).content[0].text == "stub reply: fail-500-1"
    counted = client.messages.count_tokens(
        model="gpt-test", messages=[{"role": "user", "content": "x" * 400}]
    )
    assert 90 < counted.input_tokens < 130  # an estimate, ~4 characters a token


def test_unreachable_upstream_ends_errored(start_server: ServerFactory) -> None:
    from tests.serverproc import free_port

    server = start_server(
        "--engine", "openai", "--upstream-url", f"http://127.0.0.1:{free_port()}/v1",
        "--model", "gpt-test", *FAST_RETRIES,
    )  # fmt: skip
    results = run_batch(client_for(server), {"a": ask("hello")})
    assert results["a"].type == "errored"
    assert results["a"].error.error.type == "api_error"
    assert "cannot reach" in results["a"].error.error.message


def anthropic_server(start_server: ServerFactory, stub: Stub) -> Server:
    return start_server(
        "--engine", "anthropic", "--upstream-url", stub.url, "--upstream-key", "sk-upstream",
        "--model", "claude-*", *FAST_RETRIES,
    )  # fmt: skip


def test_anthropic_upstream_forwards(start_server: ServerFactory, stub: Stub) -> None:
    client = client_for(anthropic_server(start_server, stub))
    message = client.messages.create(
        model="claude-up", max_tokens=20, system="S",
        messages=[{"role": "user", "content": "echo"}], extra_body={"top_k": 5},
    )  # fmt: skip
    sent = json.loads(message.content[0].text)  # type: ignore[union-attr]
    assert sent == {
        "model": "claude-up",
        "max_tokens": 20,
        "system": "S",
        "top_k": 5,
        "messages": [{"role": "user", "content": "echo"}],
    }
    assert message.model == "claude-up"
    counted = client.messages.count_tokens(
        model="claude-up", messages=[{"role": "user", "content": "x"}]
    )
    assert counted.input_tokens == 4242  # passed through
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.messages.create(
            model="claude-up", max_tokens=5, messages=[{"role": "user", "content": "bad-400"}]
        )
    assert "bad thing in request" in bad.value.message
    results = run_batch(
        client,
        {
            "ok": {
                "model": "claude-up",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "fail-429-2"}],
            },
            "bad": {
                "model": "claude-up",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "bad-400"}],
            },
        },
    )
    assert results["ok"].type == "succeeded" and stub.calls["fail-429-2"] == 3
    assert results["bad"].error.error.type == "invalid_request_error"


def test_anthropic_upstream_gets_structured_outputs_tools_and_platform_fields_unchanged(
    start_server: ServerFactory, stub: Stub
) -> None:
    """What only the hosted platform can do (server tools, MCP servers, containers…) and
    what batchyard also checks (schemas, strict tools, tool_choice) all reach it as sent."""
    client = client_for(anthropic_server(start_server, stub))
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    tools: list[Any] = [
        {"name": "f", "input_schema": schema, "strict": True},
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 2},
    ]
    extra: dict[str, Any] = {
        "output_config": {"format": {"type": "json_schema", "schema": schema}, "effort": "low"},
        "mcp_servers": [{"type": "url", "url": "https://mcp.example", "name": "m"}],
        "container": "container_1",
        "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "speed": "fast",
        "inference_geo": "us",
    }
    message = client.messages.create(
        model="claude-up", max_tokens=2000, tools=tools, tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "echo"}], extra_body=extra,
    )  # fmt: skip
    sent = json.loads(message.content[0].text)  # type: ignore[union-attr]
    assert sent["tools"] == tools and sent["tool_choice"] == {"type": "any"}
    assert {k: sent[k] for k in extra} == extra
    counted = client.messages.count_tokens(
        model="claude-up",
        messages=[{"role": "user", "content": "x"}],
        output_config=extra["output_config"],
        extra_body={"mcp_servers": extra["mcp_servers"]},
    )
    assert counted.input_tokens == 4242
    assert stub.received[-1]["output_config"] == extra["output_config"]
    assert "max_tokens" not in stub.received[-1]
    # a replayed server-tool turn reaches the upstream whole, fields batchyard never reads too
    turns: list[Any] = [
        {"role": "user", "content": "search"},
        {"role": "assistant", "content": [
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q"}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": [
                {"type": "web_search_result", "url": "https://x", "title": "X", "encrypted_content": "e"},
            ]},
        ]},
        {"role": "user", "content": "echo"},
    ]  # fmt: skip
    message = client.messages.create(
        model="claude-up", max_tokens=50, messages=turns, tools=tools[1:]
    )
    sent = json.loads(message.content[0].text)  # type: ignore[union-attr]
    assert sent["messages"] == turns and sent["model"] == "claude-up"


def test_anthropic_upstream_wrong_key_is_final(start_server: ServerFactory) -> None:
    with Stub(api_key="the-right-key") as stub:
        client = client_for(anthropic_server(start_server, stub))
        with pytest.raises(anthropic.AuthenticationError):
            client.messages.create(
                model="claude-up", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )


def test_openai_engine_streams_the_upstream_stream(start_server: ServerFactory, stub: Stub) -> None:
    client = client_for(openai_server(start_server, stub))
    plain = client.messages.create(**ask("tell me a story"))
    with client.messages.stream(**ask("tell me a story")) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert stub.received[-1]["stream"] is True
    assert stub.received[-1]["stream_options"] == {"include_usage": True}
    assert pieces == ["stub ", "reply: ", "tell ", "me ", "a ", "story"]  # the upstream's chunks
    assert "".join(pieces) == plain.content[0].text == "stub reply: tell me a story"
    assert final.usage.input_tokens == 12 and final.usage.output_tokens == plain.usage.output_tokens
    assert final.stop_reason == "end_turn" and final.model == "gpt-test"

    with client.messages.stream(
        model="gpt-test", max_tokens=32, tools=[TOOL],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "tool"}],
    ) as stream:  # fmt: skip
        tool_final = stream.get_final_message()
    [call] = tool_final.content
    assert call.type == "tool_use" and call.name == "get_weather" and call.input == {"city": "Oslo"}
    assert tool_final.stop_reason == "tool_use"

    with (
        pytest.raises(anthropic.BadRequestError) as bad,
        client.messages.stream(**ask("bad-400")) as failed,
    ):
        failed.get_final_message()
    assert "bad thing in request" in bad.value.message


SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}
STRICT_TOOL = {"name": "lookup", "input_schema": SCHEMA, "strict": True}


def test_openai_engine_forwards_structured_outputs_and_reasoning_controls(
    start_server: ServerFactory, stub: Stub
) -> None:
    client = client_for(openai_server(start_server, stub))
    client.messages.create(**ask(
        "echo", max_tokens=4096, tools=[STRICT_TOOL, TOOL], tool_choice={"type": "any"},
        output_config={"format": {"type": "json_schema", "schema": SCHEMA}, "effort": "xhigh"},
        thinking={"type": "enabled", "budget_tokens": 2048},
    ))  # fmt: skip
    sent = stub.received[-1]
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": SCHEMA, "strict": True},
    }
    assert [t["function"].get("strict") for t in sent["tools"]] == [True, None]
    assert sent["tool_choice"] == "required"
    assert sent["chat_template_kwargs"] == {"enable_thinking": True}
    assert sent["thinking_token_budget"] == 2048
    assert sent["reasoning_effort"] == "high"

    client.messages.create(**ask(
        "echo", tools=[STRICT_TOOL], tool_choice={"type": "tool", "name": "lookup"},
        thinking={"type": "disabled"}, output_config={"format": {"type": "json_object"}},
    ))  # fmt: skip
    sent = stub.received[-1]
    assert sent["response_format"] == {"type": "json_object"}
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "lookup"}}
    assert sent["chat_template_kwargs"] == {"enable_thinking": False}
    assert "thinking_token_budget" not in sent and "reasoning_effort" not in sent


THOUGHT = "The user asks about Oslo. It often rains there."
ANSWER = "Rain, most likely."
BUDGET_REFUSED = (
    "thinking_token_budget is set but reasoning_config is not configured. "
    "Please set --reasoning-parser and/or --reasoning-config to use thinking_token_budget."
)


class ReasoningStub(Stub):
    """The stub as vLLM with a reasoning parser: "think" answers with `reasoning_content`
    (SGLang, older vLLM), "think-new" with `reasoning` (newer vLLM); "no-budget" refuses
    `thinking_token_budget` as vLLM started without `--reasoning-parser` does."""

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        text = body["messages"][-1]["content"]
        if text == "no-budget" and "thinking_token_budget" in body:
            self.received.append(body)
            return self._respond(400, {"error": {"message": BUDGET_REFUSED, "code": 400}})
        if text not in ("think", "think-new"):
            return await super().chat(request)
        self.received.append(body)
        key = "reasoning_content" if text == "think" else "reasoning"
        if body.get("stream"):
            return self._reasoning_stream(key)
        message = {"role": "assistant", key: THOUGHT, "content": ANSWER}
        return self._respond(200, {
            "id": "chatcmpl-think", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 20, "total_tokens": 32},
        })  # fmt: skip

    def _reasoning_stream(self, key: str) -> Response:
        """Reasoning deltas, then content deltas, then the finish and usage chunks."""
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        deltas += [
            {key: piece} for piece in ("The user asks about Oslo. ", "It often rains there.")
        ]
        deltas += [{"content": piece} for piece in ("Rain, ", "most likely.")]
        chunks: list[dict[str, Any]] = [
            {"choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas
        ]
        chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        chunks.append({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 20}})
        sse = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        self.statuses[200] += 1
        return Response(sse, media_type="text/event-stream")


@pytest.fixture
def reasoning_stub() -> Iterator[ReasoningStub]:
    s = ReasoningStub(api_key="sk-upstream")
    with s:
        yield s


@pytest.mark.parametrize("text", ["think", "think-new"])
def test_openai_engine_reasoning_becomes_a_thinking_block(
    start_server: ServerFactory, reasoning_stub: ReasoningStub, text: str
) -> None:
    client = client_for(openai_server(start_server, reasoning_stub))
    asked: dict[str, Any] = {**ask(text), "max_tokens": 4096}
    asked["thinking"] = {"type": "enabled", "budget_tokens": 1024}
    message = client.messages.create(**asked)
    thinking, answer = message.content
    assert thinking.type == "thinking" and thinking.thinking == THOUGHT
    assert thinking.signature == ""
    assert answer.type == "text" and answer.text == ANSWER
    assert message.stop_reason == "end_turn" and message.usage.output_tokens == 20

    with client.messages.stream(**asked) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert reasoning_stub.received[-1]["stream"] is True
    # the SDK's accumulator built the same blocks
    assert [b.to_dict(exclude_none=True) for b in final.content] == [
        b.to_dict(exclude_none=True) for b in message.content
    ]
    assert kinds.count("thinking") == 2 and kinds.count("signature") == 1
    assert kinds.index("signature") < kinds.index("text")
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 20


def test_openai_engine_drops_a_thinking_budget_the_upstream_refuses(
    start_server: ServerFactory, reasoning_stub: ReasoningStub
) -> None:
    client = client_for(openai_server(start_server, reasoning_stub))
    asked: dict[str, Any] = {**ask("no-budget"), "max_tokens": 4096}
    asked["thinking"] = {"type": "enabled", "budget_tokens": 1024}
    with client.messages.stream(**asked) as stream:
        final = stream.get_final_message().content[0]
    assert final.type == "text" and final.text == "stub reply: no-budget"
    refused, retried = reasoning_stub.received[-2:]
    assert refused["thinking_token_budget"] == 1024
    assert "thinking_token_budget" not in retried
    assert retried["chat_template_kwargs"] == {"enable_thinking": True}  # the rest is kept
    count = len(reasoning_stub.received)
    message = client.messages.create(**asked)  # remembered: asked once, without it
    assert message.content[0].text == "stub reply: no-budget"
    assert len(reasoning_stub.received) == count + 1
    assert "thinking_token_budget" not in reasoning_stub.received[-1]


def engine_gauges(server: Server) -> dict[str, float]:
    return {
        name: value
        for (name, labels), value in samples(server.base_url).items()
        if name.startswith(("batchyard_engine_", "batchyard_upstream_"))
        and labels == (("engine", "openai"),)
    }


def test_openai_engine_capacity_follows_the_servers_metrics(start_server: ServerFactory) -> None:
    """A server with 4 seats that queues the rest, as vLLM does, and says so at /metrics:
    no --capacity given (the maximum is 1024), and the engine keeps the server's queue
    near its target (2) instead of sending it everything; with --engine-priority, batch
    work goes as priority 10 and interactive calls as 0."""
    with Stub(api_key="sk-upstream", seats=4, latency=0.05) as stub:
        server = openai_server(
            start_server, stub, "--upstream-metrics-interval", "0.05", "--engine-priority"
        )
        client = client_for(server)
        batch = client.messages.batches.create(
            requests=[{"custom_id": f"r{i}", "params": ask(f"r{i}")} for i in range(120)]  # type: ignore[typeddict-item]
        )
        seen: list[dict[str, float]] = []
        while client.messages.batches.retrieve(batch.id).processing_status != "ended":
            seen.append(engine_gauges(server))
            time.sleep(0.05)
        message = client.messages.create(**ask("interactive"))
        results = list(client.messages.batches.results(batch.id))
    assert all(r.result.type == "succeeded" for r in results) and len(results) == 120
    assert message.content[0].text == "stub reply: interactive"
    assert stub.peak_waiting <= 8, stub.load_trace
    busy = [g for g in seen if g.get("batchyard_engine_in_use", 0) > 0]
    assert busy and all(g["batchyard_engine_capacity"] <= 12 for g in busy), busy
    assert any(g.get("batchyard_upstream_running") == 4 for g in busy)
    priorities = [body.get("priority") for body in stub.received]
    assert priorities.count(10) == 120 and priorities[-1] == 0


def test_a_fleets_replicas_are_read_each_and_shown_each_on_metrics(
    start_server: ServerFactory,
) -> None:
    """Metrics named once per replica (one of them down): the engine's load is their sum
    (what admission follows), and /metrics shows each replica's reading and whether it
    answered."""
    with Stub(api_key="sk-upstream", seats=4, latency=0.05) as stub:
        down = f"http://127.0.0.1:{free_port()}/metrics"
        server = openai_server(
            start_server,
            stub,
            "--upstream-metrics-interval", "0.05",
            "--upstream-metrics-url", f"{stub.url}/metrics",
            "--upstream-metrics-url", down,
        )  # fmt: skip
        client = client_for(server)
        batch = client.messages.batches.create(
            requests=[{"custom_id": f"r{i}", "params": ask(f"r{i}")} for i in range(60)]  # type: ignore[typeddict-item]
        )
        seen: list[dict[tuple[str, tuple[tuple[str, str], ...]], float]] = []
        while client.messages.batches.retrieve(batch.id).processing_status != "ended":
            seen.append(samples(server.base_url))
            time.sleep(0.05)
        results = list(client.messages.batches.results(batch.id))
    assert all(r.result.type == "succeeded" for r in results) and len(results) == 60

    def replica(name: str, url: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        return (name, (("engine", "openai"), ("replica", url)))

    live = f"{stub.url}/metrics"
    assert all(s[replica("batchyard_upstream_replica_up", down)] == 0 for s in seen[3:])
    assert any(s.get(replica("batchyard_upstream_replica_running", live)) == 4 for s in seen)
    both = [s for s in seen if s.get(replica("batchyard_upstream_replica_up", live)) == 1]
    assert both and all(
        s[("batchyard_upstream_running", (("engine", "openai"),))]
        == s[replica("batchyard_upstream_replica_running", live)]
        for s in both
    )


def test_a_models_sampling_defaults_fill_what_a_request_leaves_out(
    start_server: ServerFactory, stub: Stub, tmp_path: Path
) -> None:
    table = tmp_path / "engines.toml"
    table.write_text(
        f'[[engines]]\nkind = "anthropic"\nbase_url = "{stub.url}"\napi_key = "sk-upstream"\n'
        'models = [{ id = "claude-up", sampling = { temperature = 0.3, top_k = 7 } }]\n'
        f'[[engines]]\nkind = "openai"\nbase_url = "{stub.url}/v1"\napi_key = "sk-upstream"\n'
        'admission = "fixed"\ncapacity = 4\n'
        'models = [{ id = "gpt-test", upstream = "upstream-model", sampling = { top_p = 0.5 } }]\n'
    )
    server = start_server("--config", str(table), *FAST_RETRIES)
    client: Any = client_for(server)  # the request is a plain dict
    ask_up = {
        "model": "claude-up",
        "max_tokens": 20,
        "messages": [{"role": "user", "content": "echo"}],
    }
    sent = json.loads(client.messages.create(**ask_up).content[0].text)
    assert (sent["temperature"], sent["top_k"]) == (0.3, 7)
    # the request's own value wins; the others still default
    own = client.messages.create(**ask_up, extra_body={"temperature": 0.9})
    sent = json.loads(own.content[0].text)
    assert (sent["temperature"], sent["top_k"]) == (0.9, 7)
    # the OpenAI dialect: its own temperature kept, the missing top_p filled in
    openai_client_for(server).chat.completions.create(
        model="gpt-test", temperature=0.1, messages=[{"role": "user", "content": "hi"}]
    )
    assert (stub.received[-1]["temperature"], stub.received[-1]["top_p"]) == (0.1, 0.5)
    # and shown in the models list (batchyard's addition)
    listed = {m.id: m.model_dump() for m in client.models.list()}
    assert listed["claude-up"]["sampling_defaults"] == {"temperature": 0.3, "top_k": 7}
    assert listed["gpt-test"]["sampling_defaults"] == {"top_p": 0.5}
