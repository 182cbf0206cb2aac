"""The OpenAI Responses API through the official `openai` SDK (strict response
validation on): created plain and streamed, stored and read back, continued with
`previous_response_id`, deleted; function tools, structured output and refusals. On
the fake engine (exact, deterministic answers), and on the embedded model for tools
and `responses.parse`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import openai
import pydantic
import pytest

from tests.conftest import client_for, openai_client_for
from tests.integration.test_local_engine import MODEL, local_server
from tests.serverproc import Server


@pytest.fixture
def oai(server: Server) -> openai.OpenAI:
    return openai_client_for(server)


def test_a_response_is_the_same_answer_as_a_message(oai: openai.OpenAI, server: Server) -> None:
    response = oai.responses.create(
        model="claude-test", instructions="Be brief.", input="Tell me about the sea",
        max_output_tokens=40, metadata={"run": "7"},
    )  # fmt: skip
    message = client_for(server).messages.create(
        model="claude-test", max_tokens=40, system="Be brief.",
        messages=[{"role": "user", "content": "Tell me about the sea"}],
    )  # fmt: skip
    assert response.object == "response" and response.id.startswith("resp_")
    assert response.status == "completed" and response.model == "claude-test"
    assert response.output_text == message.content[0].text  # type: ignore[union-attr]
    assert response.metadata == {"run": "7"} and response.instructions == "Be brief."
    assert response.usage is not None
    assert response.usage.input_tokens == message.usage.input_tokens
    assert response.usage.output_tokens == message.usage.output_tokens


def test_stored_read_back_listed_and_deleted(oai: openai.OpenAI) -> None:
    response = oai.responses.create(model="claude-test", input="Remember the blue door")
    again = oai.responses.retrieve(response.id)
    assert again.model_dump() == response.model_dump()
    items = oai.responses.input_items.list(response.id)
    [item] = items.data
    assert item.type == "message" and item.role == "user"
    assert item.content[0].text == "Remember the blue door"  # type: ignore[union-attr]
    oai.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(response.id)
    unstored = oai.responses.create(model="claude-test", input="x", store=False)
    assert unstored.model_dump().get("store") is False
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(unstored.id)


def test_previous_response_id_continues_the_conversation(oai: openai.OpenAI) -> None:
    first = oai.responses.create(model="claude-test", input="Say something about ships")
    second = oai.responses.create(
        model="claude-test", input="And about the harbour?", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id
    alone = oai.responses.create(model="claude-test", input="And about the harbour?")
    assert first.usage is not None and second.usage is not None and alone.usage is not None
    # the model read the first turn (its input and answer) before the new input
    assert second.usage.input_tokens > alone.usage.input_tokens + first.usage.output_tokens
    with pytest.raises(openai.NotFoundError, match="resp_missing"):
        oai.responses.create(model="claude-test", input="x", previous_response_id="resp_missing")


def test_a_streamed_response_adds_up_and_is_stored(oai: openai.OpenAI) -> None:
    whole = oai.responses.create(model="claude-test", input="Tell me about the sky")
    with oai.responses.stream(model="claude-test", input="Tell me about the sky") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == final.output_text == whole.output_text
    assert oai.responses.retrieve(final.id).output_text == final.output_text


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools"),
        ({"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}, "tools"),
        ({"tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]}, "tools"),
        ({"background": True}, "background"),
        ({"include": ["message.output_text.logprobs"]}, "include"),
        ({"text": {"verbosity": "high"}}, "text"),
    ],
)
def test_what_cannot_be_honoured_is_refused_by_name(
    oai: openai.OpenAI, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        oai.responses.create(model="claude-test", input="hi", **extra)
    assert bad.value.param == param, bad.value.message


def test_an_unknown_field_is_refused(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="colour"):
        oai.responses.create(model="claude-test", input="hi", extra_body={"colour": "red"})


# --- the embedded model: tools and structured output ---------------------------------

WEATHER: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = local_server(tmp_path_factory.mktemp("responses"))
    yield server
    server.stop()


def test_a_function_call_and_its_output_run_a_tool_loop(local: Server) -> None:
    oai: Any = openai_client_for(local)
    first = oai.responses.create(
        model=MODEL, input="What's the weather in Oslo?", tools=[WEATHER],
        tool_choice="required", temperature=0, max_output_tokens=60,
    )  # fmt: skip
    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and call.call_id.startswith("toolu_")
    validate = jsonschema_rs.validator_for(WEATHER["parameters"]).is_valid
    assert validate(json.loads(call.arguments)), call.arguments
    answer = oai.responses.create(
        model=MODEL, previous_response_id=first.id, tools=[WEATHER], tool_choice="none",
        temperature=0,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "3 C, snow"}],
        max_output_tokens=40,
    )  # fmt: skip
    assert answer.status == "completed" and [o.type for o in answer.output] == ["message"]


class City(pydantic.BaseModel):
    name: str
    country: str


def test_responses_parse_returns_the_parsed_object(local: Server) -> None:
    parsed = openai_client_for(local).responses.parse(
        model=MODEL, input="Paris is the capital of France. Extract the city.",
        text_format=City, temperature=0, max_output_tokens=60,
    )  # fmt: skip
    assert isinstance(parsed.output_parsed, City)
