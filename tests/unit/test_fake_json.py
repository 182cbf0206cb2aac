"""The fake engine's structured answers: documents valid against the schema (checked by
an independent validator, formats included), the same for the same request."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema_rs
import msgspec
import pytest

from batchyard.engines.fake.engine import FakeEngine
from batchyard.engines.fake.json_example import UnsupportedSchema, example, pattern_example
from batchyard.errors import EngineError
from batchyard.grammar.json_rules import FORMATS
from batchyard.wire.messages import MessageCreateParams, TextContent, ToolUseContent
from batchyard.wire.params import decode_params

PROMPT = "Extract the invoice fields from: ACME Corp, 12 May, total 340.50 EUR"
WORDS = PROMPT.split()

ADDRESS = {
    "type": "object",
    "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
    "required": ["street", "city"],
    "additionalProperties": False,
}
SCHEMAS: dict[str, dict[str, Any]] = {
    "types": {
        "type": "object",
        "properties": {
            "s": {"type": "string"},
            "i": {"type": "integer"},
            "n": {"type": "number"},
            "b": {"type": "boolean"},
            "z": {"type": "null"},
            "maybe": {"type": ["string", "null"]},
        },
        "required": ["s", "i", "n", "b", "z", "maybe"],
        "additionalProperties": False,
    },
    "formats": {
        "type": "object",
        "properties": {f: {"type": "string", "format": f} for f in FORMATS},
        "additionalProperties": False,
    },
    "enum_const_anyof": {
        "type": "object",
        "properties": {
            "colour": {"enum": ["red", "green", 3, None]},
            "fixed": {"const": {"k": [1, 2]}},
            "either": {"anyOf": [{"type": "integer"}, {"type": "string", "format": "email"}]},
        },
        "required": ["colour", "fixed", "either"],
        "additionalProperties": False,
    },
    "arrays": {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": "string"}},
            "one": {"type": "array", "items": {"type": "integer"}, "minItems": 1},
            "none": {"type": "array", "items": {"type": "integer"}, "maxItems": 0},
            "pair": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "null"}]},
        },
        "required": ["tags", "one"],
        "additionalProperties": False,
    },
    "refs": {
        "type": "object",
        "properties": {
            "home": {"$ref": "#/$defs/Address"},
            "work": {"anyOf": [{"$ref": "#/definitions/Address"}, {"type": "null"}]},
            "history": {"type": "array", "items": {"$ref": "#/$defs/Address"}},
        },
        "required": ["home", "work", "history"],
        "additionalProperties": False,
        "$defs": {"Address": ADDRESS},
        "definitions": {"Address": ADDRESS},
    },
    "all_of_merges_objects": {
        "allOf": [
            {"$ref": "#/$defs/Address"},
            {
                "type": "object",
                "properties": {"zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
                "required": ["zip"],
            },
        ],
        "$defs": {"Address": ADDRESS | {"additionalProperties": True}},
    },
    "no_type_keywords_imply_it": {
        "properties": {"items": {"items": {"type": "boolean"}, "minItems": 1}},
        "required": ["items"],
    },
    "recursive_tree": {
        "$ref": "#/$defs/Node",
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {
                    "label": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                },
                "required": ["label", "children"],
                "additionalProperties": False,
            }
        },
    },
    "required_but_not_described": {"type": "object", "required": ["x"]},
    "ref_into_a_list": {"anyOf": [{"type": "integer"}], "items": {"$ref": "#/anyOf/0"}},
    "root_array": {"type": "array", "items": {"type": "string", "format": "uuid"}, "minItems": 1},
    "root_string": {"type": "string", "format": "date-time"},
    "empty_schema": {},
}


def is_valid(schema: dict[str, Any], instance: Any) -> bool:
    return jsonschema_rs.validator_for(schema, validate_formats=True).is_valid(instance)


@pytest.mark.parametrize("name", SCHEMAS)
@pytest.mark.parametrize("seed", range(6))
def test_documents_are_valid_and_deterministic(name: str, seed: int) -> None:
    schema = SCHEMAS[name]
    document = example(schema, WORDS, seed)
    assert is_valid(schema, document), json.dumps(document)
    assert example(schema, WORDS, seed) == document
    json.dumps(document, allow_nan=False)  # a JSON document, nothing Python-only in it


def test_objects_are_full_and_strings_come_from_the_prompt() -> None:
    document = example(SCHEMAS["types"], WORDS, 1)
    assert set(document) == set(SCHEMAS["types"]["properties"])
    assert all(word in WORDS for word in document["s"].split())
    assert example(ADDRESS, [], 0xABC)["street"] == "00000abc 00000abc"  # no words: the digest


def test_choices_vary_with_the_seed() -> None:
    colours = {example(SCHEMAS["enum_const_anyof"], WORDS, s)["colour"] for s in range(40)}
    assert colours == {"red", "green", 3, None}


@pytest.mark.parametrize(
    "pattern",
    [
        r"^[A-Z]{2}-\d{3,}$",
        r"^\w+@\w+\.(com|org)$",
        r"^(ab|cd)+x?$",
        r"[^a-z0-9]",
        r"^\s*\S+$",
        r"(?i)^hello",
        r"^(?!no)y.s$",
        r"^[-+]?\d*\.\d+$",
        r"^(\d)\1$",
    ],
)
def test_pattern_examples_match(pattern: str) -> None:
    text = pattern_example(pattern)
    assert re.search(pattern, text)
    assert is_valid({"type": "string", "pattern": pattern}, text)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"never": False}},
        {"$ref": "https://example.com/schema.json"},
        {"$ref": "#/$defs/Missing"},
        {"$ref": "#/$defs/0/x", "$defs": [True]},
        {"$ref": "#/anyOf/7", "anyOf": [{}]},
        {"enum": []},
        {"allOf": [{"type": "string"}, {"type": "integer"}]},
        {"$ref": "#/$defs/Loop", "$defs": {"Loop": {"$ref": "#/$defs/Loop"}}},
        {"type": "string", "pattern": "[^\\s\\S]"},
    ],
)
def test_schemas_without_an_instance_are_refused(schema: dict[str, Any]) -> None:
    with pytest.raises(UnsupportedSchema):
        example(schema, WORDS, 0)


# --- the fake engine -----------------------------------------------------------------


def params(**fields: Any) -> MessageCreateParams:
    body = {
        "model": "m",
        "max_tokens": 512,
        "messages": [{"role": "user", "content": PROMPT}],
        **fields,
    }
    return decode_params(msgspec.json.encode(body))


INVOICE = {
    "type": "object",
    "properties": {
        "vendor": {"type": "string"},
        "date": {"type": "string", "format": "date"},
        "total": {"type": "number"},
        "lines": {"type": "array", "items": ADDRESS},
    },
    "required": ["vendor", "date", "total", "lines"],
    "additionalProperties": False,
}


@pytest.mark.anyio
async def test_the_fake_answers_json_valid_against_the_schema() -> None:
    engine = FakeEngine()
    request = params(output_config={"format": {"type": "json_schema", "schema": INVOICE}})
    message = await engine.create_message(request)
    [block] = message.content
    assert isinstance(block, TextContent) and message.stop_reason == "end_turn"
    assert is_valid(INVOICE, json.loads(block.text))
    assert message.usage.output_tokens == len(block.text.split(" "))
    again = await engine.create_message(request)
    assert again.content == message.content


@pytest.mark.anyio
async def test_json_object_is_a_small_object() -> None:
    message = await FakeEngine().create_message(
        params(output_config={"format": {"type": "json_object"}})
    )
    [block] = message.content
    assert isinstance(block, TextContent)
    assert json.loads(block.text)["reply"].startswith("fake reply ")


@pytest.mark.anyio
async def test_max_tokens_cuts_the_document_as_a_model_would() -> None:
    request = params(
        max_tokens=3, output_config={"format": {"type": "json_schema", "schema": INVOICE}}
    )
    message = await FakeEngine().create_message(request)
    [block] = message.content
    assert isinstance(block, TextContent)
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 3
    with pytest.raises(json.JSONDecodeError):
        json.loads(block.text)


TOOLS = [
    {"name": "lookup", "description": "", "input_schema": {"type": "object", "properties": {}}},
    {"name": "file_invoice", "description": "", "input_schema": INVOICE},
]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("tools", "choice", "called"),
    [
        (TOOLS, {"type": "tool", "name": "file_invoice"}, "file_invoice"),
        (TOOLS, {"type": "any"}, "lookup"),
        (TOOLS[::-1], {"type": "any", "disable_parallel_tool_use": True}, "file_invoice"),
    ],
)
async def test_a_forced_tool_is_called_with_a_valid_input(
    tools: list[dict[str, Any]], choice: dict[str, Any], called: str
) -> None:
    message = await FakeEngine().create_message(params(tools=tools, tool_choice=choice))
    [block] = message.content
    assert isinstance(block, ToolUseContent) and message.stop_reason == "tool_use"
    assert block.name == called and block.id.startswith("toolu_01")
    schema = next(t["input_schema"] for t in tools if t["name"] == called)
    assert is_valid(schema, block.input)
    assert message.usage.output_tokens == len(json.dumps(block.input).split(" "))


@pytest.mark.anyio
async def test_auto_tool_choice_still_answers_in_text() -> None:
    message = await FakeEngine().create_message(params(tools=TOOLS, tool_choice={"type": "auto"}))
    assert isinstance(message.content[0], TextContent) and message.stop_reason == "end_turn"


@pytest.mark.anyio
async def test_a_forced_call_past_max_tokens_is_cut_off() -> None:
    request = params(
        max_tokens=2, tools=TOOLS, tool_choice={"type": "tool", "name": "file_invoice"}
    )
    message = await FakeEngine().create_message(request)
    [block] = message.content
    assert isinstance(block, ToolUseContent) and block.input == {}
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 2


@pytest.mark.anyio
async def test_an_input_schema_without_instance_is_an_invalid_request() -> None:
    tools = [{"name": "never", "input_schema": {"type": "object", "properties": {"x": False}}}]
    with pytest.raises(EngineError) as err:
        await FakeEngine().create_message(params(tools=tools, tool_choice={"type": "any"}))
    assert err.value.error_type == "invalid_request_error" and not err.value.retryable
    assert err.value.message.startswith("tools.never.input_schema: ")
