"""Structured outputs in the OpenAI dialect with the official `openai` SDK, on the fake
engine: `response_format` (a JSON schema, a pydantic model through `.parse`, JSON
mode), forced function calls, refusals naming `response_format`, and batch lines
mixing schemas."""

from __future__ import annotations

import datetime
import json
from typing import Any, Literal

import jsonschema_rs
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from openai.types.shared_params import ResponseFormatJSONSchema
from pydantic import BaseModel

from tests.conftest import openai_client_for
from tests.integration.test_openai_batches import jsonl, line, upload, wait_done
from tests.serverproc import Server

PROMPT: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "Extract the invoice."},
    {"role": "user", "content": "ACME Corp billed 340.50 EUR on 12 May for two anvils"},
]
LINE: dict[str, Any] = {
    "type": "object",
    "properties": {"item": {"type": "string"}, "amount": {"type": "number"}},
    "required": ["item", "amount"],
    "additionalProperties": False,
}
INVOICE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "vendor": {"type": "string"},
        "issued": {"type": "string", "format": "date"},
        "currency": {"enum": ["EUR", "USD"]},
        "lines": {"type": "array", "items": {"$ref": "#/$defs/Line"}},
        "contact": {"anyOf": [{"type": "string", "format": "email"}, {"type": "null"}]},
    },
    "required": ["vendor", "issued", "currency", "lines", "contact"],
    "additionalProperties": False,
    "$defs": {"Line": LINE},
}
PERSON: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "id": {"type": "string", "format": "uuid"},
    },
    "required": ["name", "age", "id"],
    "additionalProperties": False,
}


def bounded_person(keyword: str) -> dict[str, Any]:
    """PERSON with a bound on `age` that a grammar cannot enforce (so it is refused)."""
    age = {"type": "integer", keyword: 150}
    return PERSON | {"properties": {**PERSON["properties"], "age": age}}


def json_schema(name: str, schema: dict[str, Any]) -> ResponseFormatJSONSchema:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


def is_valid(schema: dict[str, Any], text: str | None) -> bool:
    assert text is not None
    return jsonschema_rs.validator_for(schema, validate_formats=True).is_valid(json.loads(text))


@pytest.fixture
def oai(server: Server) -> openai.OpenAI:
    return openai_client_for(server)


def test_a_json_schema_answer_validates(oai: openai.OpenAI) -> None:
    chat = oai.chat.completions.create(
        model="claude-test",
        messages=PROMPT,
        response_format=json_schema("invoice", INVOICE),
    )
    [choice] = chat.choices
    assert choice.finish_reason == "stop"
    assert is_valid(INVOICE, choice.message.content)
    streamed = oai.chat.completions.create(
        model="claude-test",
        messages=PROMPT,
        response_format=json_schema("invoice", INVOICE),
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert text == choice.message.content  # the same request, the same document


class Line(BaseModel):
    item: str
    amount: float


class Invoice(BaseModel):
    vendor: str
    issued: datetime.date
    currency: Literal["EUR", "USD"]
    lines: list[Line]
    contact: str | None


def test_parse_fills_in_the_pydantic_model(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.parse(
        model="claude-test", messages=PROMPT, response_format=Invoice
    )
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Invoice) and isinstance(parsed.issued, datetime.date)
    assert all(isinstance(x, Line) for x in parsed.lines)


def test_json_mode_answers_an_object(oai: openai.OpenAI) -> None:
    chat = oai.chat.completions.create(
        model="claude-test", messages=PROMPT, response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(chat.choices[0].message.content or ""), dict)


def test_a_forced_function_is_called_with_valid_arguments(oai: openai.OpenAI) -> None:
    chat = oai.chat.completions.create(
        model="claude-test",
        messages=PROMPT,
        tools=[
            {"type": "function", "function": {"name": "lookup", "parameters": LINE}},
            {"type": "function", "function": {"name": "file", "parameters": PERSON}},
        ],
        tool_choice={"type": "function", "function": {"name": "file"}},
        parallel_tool_calls=False,
    )
    [choice] = chat.choices
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "file"
    assert is_valid(PERSON, call.function.arguments)


@pytest.mark.parametrize(
    ("response_format", "says"),
    [
        ({"type": "grammar", "grammar": "root ::= x"}, "response_format.type: must be"),
        ({"type": "json_schema", "json_schema": {"name": "x"}}, ".schema: required"),
        (
            json_schema("p", bounded_person("minimum")),
            "response_format.json_schema.schema.properties.age.minimum:",
        ),
    ],
)
def test_an_unsupported_response_format_is_a_400_naming_it(
    oai: openai.OpenAI,
    response_format: Any,
    says: str,  # Any: most are not the SDK's types
) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        oai.chat.completions.create(
            model="claude-test",
            messages=PROMPT,
            response_format=response_format,
        )
    assert bad.value.status_code == 400 and bad.value.param == "response_format"
    assert says in bad.value.message


def test_a_field_that_would_change_the_answer_is_refused(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        oai.chat.completions.create(model="claude-test", messages=PROMPT, logprobs=True)
    assert bad.value.param == "logprobs"
    accepted = oai.chat.completions.create(
        model="claude-test", messages=PROMPT, seed=7, user="u-1", store=False
    )
    assert accepted.choices[0].finish_reason == "stop"


def test_batch_lines_with_two_schemas_all_validate(oai: openai.OpenAI) -> None:
    schemas = {f"line-{i}": (INVOICE, PERSON)[i % 2] for i in range(12)}
    lines = []
    for custom_id, schema in schemas.items():
        request = line(custom_id, f"Document number {custom_id} from ACME")
        request["body"]["max_tokens"] = 1000
        request["body"]["response_format"] = json_schema(custom_id.replace("-", "_"), schema)
        lines.append(request)
    bounded = line("bounded", "Ages have a maximum")
    bounded["body"]["response_format"] = json_schema("bounded", bounded_person("maximum"))
    lines.append(bounded)
    batch = oai.batches.create(
        input_file_id=upload(oai, lines), endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = wait_done(oai, batch.id)
    assert done.status == "completed"
    [(custom_id, error)] = jsonl(oai, done.error_file_id or "").items()
    assert custom_id == "bounded" and error["response"]["status_code"] == 400
    message = error["response"]["body"]["error"]["message"]
    assert message.startswith("response_format.json_schema.schema.properties.age.maximum:")
    out = jsonl(oai, done.output_file_id or "")
    assert set(out) == set(schemas)
    for custom_id, schema in schemas.items():
        body = out[custom_id]["response"]["body"]
        assert body["choices"][0]["finish_reason"] == "stop"
        assert is_valid(schema, body["choices"][0]["message"]["content"]), custom_id
