"""Structured outputs and forced tool calls on the embedded model, through the official
SDKs: every answer that finishes is valid against its schema (checked with jsonschema),
and one cut by `max_tokens` says so."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Literal

import anthropic
import jsonschema_rs
import pydantic
import pytest

from batchyard.engines.local.engine import f16_weights, shipped_weights
from batchyard.engines.local.generation import Generation
from batchyard.engines.local.runtime import LlamaRuntime
from batchyard.grammar.json_schema import json_schema_grammar
from tests.conftest import client_for, openai_client_for
from tests.integration.test_local_engine import MODEL, local_server
from tests.integration.test_local_engine import batch_texts as batch_results
from tests.integration.test_prefix_runtime import generate
from tests.serverproc import Server


def obj(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An object schema with every property required, as the hosted API wants them."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
        **extra,
    }


PERSON = obj({"name": {"type": "string"}, "age": {"type": "integer"}, "city": {"type": "string"}})
SENTIMENT = obj(
    {"sentiment": {"enum": ["positive", "negative", "neutral"]}, "confidence": {"type": "number"}}
)
BOOK = obj(
    {
        "title": {"type": "string"},
        "author": obj({"name": {"type": "string"}, "born": {"type": "integer"}}),
        "genres": {
            "type": "array",
            "items": {"enum": ["fiction", "science", "history", "poetry"]},
            "minItems": 1,
        },
    }
)
COLOURS = obj({"colours": {"type": "array", "items": {"type": "string"}}})
ORDER = obj(
    {
        "item": {"$ref": "#/$defs/Item"},
        "gift": {"type": "boolean"},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "date": {"type": "string", "format": "date"},
    },
    **{"$defs": {"Item": obj({"product": {"type": "string"}, "quantity": {"type": "integer"}})}},
)
CASES: list[tuple[str, dict[str, Any], str, list[str]]] = [
    (
        "person",
        PERSON,
        "Extract the person.",
        [
            "Alice is 31 and lives in Paris.",
            "Bob, 45, is from Berlin.",
            "Carla lives in Rome; she is 28.",
            "Dan is a 60 year old from Oslo.",
            "Eve (22) lives in Madrid.",
            "Frank is 39 and lives in Vienna.",
            "Grace is 50 and lives in Lisbon.",
        ],
    ),
    (
        "sentiment",
        SENTIMENT,
        "Classify the sentiment of the review.",
        [
            "I loved this phone, it is great!",
            "Terrible service, never again.",
            "It was okay, nothing special.",
            "Absolutely fantastic food.",
            "The movie was boring and too long.",
            "Fine, works as expected.",
        ],
    ),
    (
        "order",
        ORDER,
        "Extract the order.",
        [
            "Buy 7 candles on 2024-09-09, as a gift.",
            "I want 1 lamp for myself on 2023-12-24, no note.",
            "Send 3 books on 2025-01-15 as a gift with the note 'Happy birthday'.",
            "Buy 5 pens on 2024-02-10, not a gift.",
            "Get 4 plates on 2023-11-30 for me.",
        ],
    ),
    (
        "colours",
        COLOURS,
        "List the colours mentioned.",
        ["I painted the wall red and the door blue.", "The flag is green, white and orange."],
    ),
    ("book", BOOK, "Extract the book.", ["Leaves of Grass is poetry by Walt Whitman, born 1819."]),
]


def valid(schema: dict[str, Any], text: str) -> bool:
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        return False
    return bool(jsonschema_rs.validator_for(schema).is_valid(document))


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = local_server(tmp_path_factory.mktemp("structured"))
    yield server
    server.stop()


def shaped(system: str, schema: dict[str, Any], text: str, max_tokens: int = 120) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": max_tokens,
        "temperature": 0,
        "system": system,
        "output_config": {"format": {"type": "json_schema", "schema": schema}},
        "messages": [{"role": "user", "content": text}],
    }


def create_kwargs(request: dict[str, Any]) -> dict[str, Any]:
    """A request as SDK keyword arguments (`temperature` goes in extra_body)."""
    kwargs = {k: v for k, v in request.items() if k != "temperature"}
    return {**kwargs, "extra_body": {"temperature": request["temperature"]}}


def test_a_batch_with_mixed_schemas_answers_valid_json_every_time(local: Server) -> None:
    requests = {
        f"{name}-{i}": shaped(system, schema, text)
        for name, schema, system, texts in CASES
        for i, text in enumerate(texts)
    }
    assert len(requests) >= 20
    results = batch_results(client_for(local), requests)
    for custom_id, result in results.items():
        schema = next(s for name, s, _, _ in CASES if custom_id.startswith(f"{name}-"))
        assert result.type == "succeeded", (custom_id, result)
        message = result.message
        assert message.stop_reason == "end_turn", (custom_id, message)
        assert valid(schema, message.content[0].text), (custom_id, message.content[0].text)
    person = json.loads(results["person-0"].message.content[0].text)
    assert person == {"name": "Alice", "age": 31, "city": "Paris"}


class Person(pydantic.BaseModel):
    name: str
    age: int
    city: str


class Review(pydantic.BaseModel):
    sentiment: Literal["positive", "negative", "neutral"]
    summary: str


def test_messages_parse_returns_the_parsed_object(local: Server) -> None:
    client = client_for(local)
    for text in ("Bob, 45, is from Berlin.", "Eve (22) lives in Madrid."):
        parsed = client.messages.parse(
            model=MODEL,
            max_tokens=120,
            system="Extract the person.",
            messages=[{"role": "user", "content": text}],
            output_format=Person,
            extra_body={"temperature": 0},
        )
        assert isinstance(parsed.parsed_output, Person), parsed
        assert parsed.parsed_output.name in text
    review = client.messages.parse(
        model=MODEL,
        max_tokens=120,
        system="Classify the review and summarise it in a few words.",
        messages=[{"role": "user", "content": "Terrible service, never again."}],
        output_format=Review,
        extra_body={"temperature": 0},
    )
    assert isinstance(review.parsed_output, Review)


def test_a_forced_call_cut_by_max_tokens_shows_no_half_call(local: Server) -> None:
    client: Any = client_for(local)
    message = client.messages.create(
        model=MODEL,
        max_tokens=4,
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "Is it cold in Oslo?"}],
        extra_body={"temperature": 0},
    )
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 4
    assert message.content == []  # not the engine's '{"name": "get_weather", "in' as text


def test_max_tokens_cuts_the_json_and_says_so(local: Server) -> None:
    message = client_for(local).messages.create(
        **create_kwargs(shaped("Extract the person.", PERSON, "Alice is 31 and lives in Paris.", 5))
    )
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 5
    text = message.content[0].text
    assert text.startswith("{") and not valid(PERSON, text)


@pytest.mark.parametrize(
    ("schema", "where"),
    [
        (obj({"age": {"type": "integer", "minimum": 0}}), "properties.age.minimum"),
        (obj({"name": {"type": "string", "maxLength": 5}}), "properties.name.maxLength"),
        (obj({"x": {"type": "string", "format": "credit-card"}}), "properties.x.format"),
        ({"type": "object", "additionalProperties": True}, "additionalProperties"),
        (obj({"n": {"$ref": "#"}}), "properties.n.$ref"),
        (obj({"n": {"oneOf": [{"type": "string"}]}}), "properties.n.oneOf"),
    ],
)
def test_a_schema_that_cannot_be_enforced_is_a_400_naming_it(
    local: Server, schema: dict[str, Any], where: str
) -> None:
    client = client_for(local)
    with pytest.raises(anthropic.BadRequestError) as exc:
        client.messages.create(**create_kwargs(shaped("Extract.", schema, "x")))
    assert exc.value.status_code == 400
    assert f"output_config.format.schema.{where}:" in exc.value.message
    # in a batch the same request errors alone; the others run
    results = batch_results(
        client,
        {
            "bad": shaped("Extract.", schema, "x"),
            "good": shaped("Extract the person.", PERSON, "Bob, 45, is from Berlin."),
        },
    )
    assert results["bad"].type == "errored"
    assert where in results["bad"].error.error.message
    assert results["good"].type == "succeeded"


WEATHER: dict[str, Any] = {
    "name": "get_weather",
    "description": "Get the current weather in a city",
    "input_schema": obj({"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}}),
    "strict": True,
}
SEARCH: dict[str, Any] = {
    "name": "search_books",
    "description": "Search the library for books by an author",
    "input_schema": obj({"author": {"type": "string"}}),
}


@pytest.mark.parametrize(
    ("choice", "question", "expected"),
    [
        ({"type": "any"}, "What's the weather like in Berlin?", None),
        ({"type": "tool", "name": "search_books"}, "Find books by Jane Austen.", "search_books"),
    ],
)
def test_a_forced_tool_call_is_a_valid_tool_use_block(
    local: Server, choice: dict[str, Any], question: str, expected: str | None
) -> None:
    message = client_for(local).messages.create(  # type: ignore[call-overload]
        model=MODEL,
        max_tokens=100,
        tools=[WEATHER, SEARCH],
        tool_choice=choice,
        messages=[{"role": "user", "content": question}],
        extra_body={"temperature": 0},
    )
    assert message.stop_reason == "tool_use"
    (block,) = message.content
    assert block.type == "tool_use" and block.id.startswith("toolu_")
    if expected:
        assert block.name == expected
    tool = WEATHER if block.name == "get_weather" else SEARCH
    assert jsonschema_rs.validator_for(tool["input_schema"]).is_valid(block.input), block.input


def test_a_forced_tool_call_streams_as_one_tool_use_block(local: Server) -> None:
    with client_for(local).messages.stream(
        model=MODEL,
        max_tokens=100,
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "Is it cold in Oslo?"}],
        extra_body={"temperature": 0},
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].type == "tool_use" and final.content[0].name == "get_weather"
    assert jsonschema_rs.validator_for(WEATHER["input_schema"]).is_valid(final.content[0].input)


def test_server_tools_are_refused_and_tool_choice_none_answers_text(local: Server) -> None:
    client = client_for(local)
    with pytest.raises(anthropic.BadRequestError, match=r"tools\.0: server tools"):
        client.messages.create(
            model=MODEL,
            max_tokens=20,
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
            messages=[{"role": "user", "content": "News?"}],
        )
    with pytest.raises(anthropic.BadRequestError, match="mcp_servers"):
        client.messages.create(
            model=MODEL,
            max_tokens=20,
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"mcp_servers": [{"type": "url", "url": "https://x", "name": "x"}]},
        )
    # tool_choice none: the tools are not used and the answer is text
    message = client.messages.create(  # type: ignore[call-overload]
        model=MODEL,
        max_tokens=8,
        tools=[WEATHER],
        tool_choice={"type": "none"},
        messages=[{"role": "user", "content": "Say hello."}],
    )
    assert message.content[0].type == "text"


def test_thinking_is_answered_without_thinking_blocks(local: Server) -> None:
    message = client_for(local).messages.create(
        model=MODEL,
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "Say hello."}],
        extra_body={"temperature": 0},
    )
    assert [b.type for b in message.content] == ["text"]


def test_the_openai_sdk_gets_valid_json_from_the_embedded_model(local: Server) -> None:
    client = openai_client_for(local)
    completion = client.chat.completions.create(
        model=MODEL,
        temperature=0,
        max_tokens=120,
        messages=[
            {"role": "system", "content": "Extract the person."},
            {"role": "user", "content": "Carla lives in Rome; she is 28."},
        ],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": PERSON},
        },
    )
    content = completion.choices[0].message.content
    assert content is not None and valid(PERSON, content), content
    parsed = client.chat.completions.parse(
        model=MODEL,
        temperature=0,
        max_tokens=120,
        messages=[
            {"role": "system", "content": "Extract the person."},
            {"role": "user", "content": "Dan is a 60 year old from Oslo."},
        ],
        response_format=Person,
    )
    assert isinstance(parsed.choices[0].message.parsed, Person)


# --- the runtime: constrained and free sequences in one decode ----------------------


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaRuntime]:
    weights = f16_weights(shipped_weights(), tmp_path_factory.mktemp("models"))
    rt = LlamaRuntime(weights, n_seq=4, n_ctx_seq=512, n_threads=2, prefix_cache_bytes=0)
    yield rt
    rt.close()


def _prompt(system: str, user: str) -> str:
    return (
        f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def run(rt: LlamaRuntime, jobs: list[tuple[str, str | None]]) -> list[Generation]:
    return generate(rt, [t for t, _ in jobs], 40, digests=True, grammars=[g for _, g in jobs])


def test_constrained_and_free_sequences_share_a_decode_unchanged(runtime: LlamaRuntime) -> None:
    grammar = json_schema_grammar(PERSON)
    system = "Extract the person as JSON with name, age and city."
    jobs: list[tuple[str, str | None]] = [
        (_prompt(system, "Alice is 31 and lives in Paris."), grammar),
        (_prompt("You are a helpful assistant.", "Name a colour."), None),
        (_prompt(system, "Bob, 45, is from Berlin."), grammar),
        (_prompt("You are a helpful assistant.", "Count to three."), None),
    ]
    alone = [run(runtime, [job])[0] for job in jobs]
    together = run(runtime, jobs)
    assert [g.text for g in together] == [g.text for g in alone]
    assert [g.logit_digests for g in together] == [g.logit_digests for g in alone]
    for g, (_, grammar_used) in zip(together, jobs, strict=True):
        if grammar_used:
            assert g.stop_reason == "end_turn" and valid(PERSON, g.text), g.text
    free = run(runtime, [(jobs[0][0], None)])[0]
    assert not valid(PERSON, free.text)  # without the grammar the model does not keep to it
