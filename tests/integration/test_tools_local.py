"""Tools the embedded model chooses to call (`tool_choice` auto, or none given), through
the official SDKs: free text stays text, every call it makes is a `tool_use` block (a
`tool_calls` entry in the OpenAI dialect) valid against its tool's schema, streamed as
the hosted API streams it, and a tool loop runs end to end. What the small model says
is not asserted; what the client gets back is.

SmolLM2-135M rarely calls a tool on a bare question; a conversation where it called
before (as the frameworks' agent loops build them) makes it call again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest

from tests.conftest import client_for, openai_client_for
from tests.integration.test_local_engine import MODEL, local_server
from tests.serverproc import Server

WEATHER: dict[str, Any] = {
    "name": "get_weather",
    "description": "Get the current weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city", "unit"],
        "additionalProperties": False,
    },
}
IS_VALID = jsonschema_rs.validator_for(WEATHER["input_schema"]).is_valid


def _turn(n: int, city: str, result: str, answer: str) -> list[dict[str, Any]]:
    # the earlier calls leave out the required `unit`: a call valid against the schema
    # is the grammar's doing, not the model copying them
    call = {"city": city}
    return [
        {"role": "user", "content": f"What is the weather in {city}?"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": f"toolu_{n}", "name": "get_weather", "input": call},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": f"toolu_{n}", "content": result},
        ]},
        {"role": "assistant", "content": answer},
    ]  # fmt: skip


HISTORY = [
    *_turn(1, "Paris", "18 C, sunny", "It is 18 C and sunny in Paris."),
    *_turn(2, "London", "12 C, rain", "It is 12 C and raining in London."),
]
ASK = {"role": "user", "content": "What is the weather in Tokyo?"}


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = local_server(tmp_path_factory.mktemp("tools"))
    yield server
    server.stop()


def create(server: Server, messages: list[dict[str, Any]], **extra: Any) -> Any:
    kwargs: dict[str, Any] = {"max_tokens": 80, **extra}
    client: Any = client_for(server)  # the requests are plain dicts
    return client.messages.create(
        model=MODEL, tools=[WEATHER], messages=messages, extra_body={"temperature": 0}, **kwargs
    )


def test_the_model_calls_a_tool_when_it_chooses_to(local: Server) -> None:
    for extra in ({}, {"tool_choice": {"type": "auto"}}):
        message = create(local, [*HISTORY, ASK], **extra)
        assert message.stop_reason == "tool_use", message.content
        calls = [b for b in message.content if b.type == "tool_use"]
        assert calls and all(b.name == "get_weather" and IS_VALID(b.input) for b in calls)
        assert all(b.id.startswith("toolu_") for b in calls)
        assert not any("<tool_call>" in getattr(b, "text", "") for b in message.content)


def test_free_text_stays_text(local: Server) -> None:
    message = create(local, [{"role": "user", "content": "Say hello."}])
    assert message.stop_reason == "end_turn"
    assert [b.type for b in message.content] == ["text"] and message.content[0].text


def test_one_call_at_most_when_parallel_use_is_off(local: Server) -> None:
    ask = {"role": "user", "content": "What is the weather in Tokyo and in Rome?"}
    message = create(
        local, [*HISTORY, ask], tool_choice={"type": "auto", "disable_parallel_tool_use": True}
    )
    assert len([b for b in message.content if b.type == "tool_use"]) <= 1


def test_a_call_cut_by_max_tokens_leaves_no_wrapper(local: Server) -> None:
    for max_tokens in (3, 8, 14):
        message = create(local, [*HISTORY, ASK], max_tokens=max_tokens)
        assert message.stop_reason == "max_tokens"
        assert all(b.type == "text" and "<tool" not in b.text for b in message.content)


def test_a_chosen_call_streams_as_a_tool_use_block(local: Server) -> None:
    client: Any = client_for(local)
    with client.messages.stream(
        model=MODEL,
        max_tokens=80,
        tools=[WEATHER],
        messages=[*HISTORY, ASK],
        extra_body={"temperature": 0},
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    deltas = [e.delta.partial_json for e in events if e.type == "content_block_delta"
              and e.delta.type == "input_json_delta"]  # fmt: skip
    calls = [b for b in final.content if b.type == "tool_use"]
    assert calls and [json.loads(d) for d in deltas] == [b.input for b in calls]
    assert all(IS_VALID(b.input) for b in calls)
    texts = [e.delta.text for e in events if e.type == "content_block_delta"
             and e.delta.type == "text_delta"]  # fmt: skip
    assert "<tool" not in "".join(texts)


def test_a_tool_loop_runs_to_an_answer(local: Server) -> None:
    messages = [*HISTORY, ASK]
    first = create(local, messages)
    assert first.stop_reason == "tool_use"
    results = [
        {"type": "tool_result", "tool_use_id": b.id, "content": "25 C, clear"}
        for b in first.content
        if b.type == "tool_use"
    ]
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": results},
    ]
    answer = create(local, messages)
    assert answer.stop_reason == "end_turn"
    assert answer.content[0].type == "text" and answer.content[0].text


def _openai_history() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n, (city, result, answer) in enumerate(
        [("Paris", "18 C, sunny", "It is 18 C and sunny in Paris."),
         ("London", "12 C, rain", "It is 12 C and raining in London.")]
    ):  # fmt: skip
        args = json.dumps({"city": city})
        out += [
            {"role": "user", "content": f"What is the weather in {city}?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": f"call_{n}", "type": "function",
                 "function": {"name": "get_weather", "arguments": args}},
            ]},
            {"role": "tool", "tool_call_id": f"call_{n}", "content": result},
            {"role": "assistant", "content": answer},
        ]  # fmt: skip
    return out


@pytest.mark.parametrize("choice", [None, "auto"])
def test_the_openai_sdk_gets_tool_calls_the_model_chose(local: Server, choice: Any) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": WEATHER["description"],
            "parameters": WEATHER["input_schema"],
        },
    }
    extra = {"tool_choice": choice} if choice else {}
    client: Any = openai_client_for(local)
    completion = client.chat.completions.create(
        model=MODEL, max_tokens=80, temperature=0, tools=[tool],
        messages=[*_openai_history(), {"role": "user", "content": "What is the weather in Tokyo?"}],
        **extra,
    )  # fmt: skip
    choice0 = completion.choices[0]
    assert choice0.finish_reason == "tool_calls"
    calls = choice0.message.tool_calls
    assert calls and all(c.function.name == "get_weather" for c in calls)
    assert all(IS_VALID(json.loads(c.function.arguments)) for c in calls)
