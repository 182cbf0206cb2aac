"""The schema subset: what compiles, what is refused (and where), and the compile cache.
That what compiles generates only valid documents is tests/integration/test_grammar_walks.py."""

from __future__ import annotations

import datetime
import enum
import uuid
from typing import Any, Literal

import pydantic
import pytest
from anthropic.lib._parse._transform import transform_schema

from batchyard.grammar import json_schema as js
from batchyard.grammar.json_schema import SchemaError, json_schema_grammar, tool_call_grammar


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Address(pydantic.BaseModel):
    street: str
    zip_code: str | None = None


class Customer(pydantic.BaseModel):
    name: str
    kind: Literal["person", "company"]
    colour: Colour
    since: datetime.date
    seen: datetime.datetime
    id: uuid.UUID
    addresses: list[Address]
    score: float = 0.5
    tags: list[str] = []


def test_what_the_sdk_sends_for_a_pydantic_model_compiles() -> None:
    """`client.messages.parse(output_format=Customer)` sends this schema."""
    grammar = json_schema_grammar(transform_schema(Customer))
    assert grammar.startswith("root ::= ")
    assert '"\\"" date "\\""' in grammar and '"\\"" uuid "\\""' in grammar


def obj(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties)}


@pytest.mark.parametrize(
    ("schema", "path", "fragment"),
    [
        (obj(n={"type": "integer", "minimum": 1}), ("properties", "n", "minimum"), "numerical"),
        (obj(n={"type": "number", "multipleOf": 2}), ("properties", "n", "multipleOf"), "numerical"),
        (obj(s={"type": "string", "minLength": 1}), ("properties", "s", "minLength"), "length"),
        (obj(a={"type": "array", "maxItems": 3}), ("properties", "a", "maxItems"), "minItems 0 or 1"),
        (obj(a={"type": "array", "minItems": 2}), ("properties", "a", "minItems"), "0 or 1"),
        (obj(s={"type": "string", "format": "phone"}), ("properties", "s", "format"), "'phone'"),
        (obj(s={"oneOf": [{"type": "string"}]}), ("properties", "s", "oneOf"), "anyOf"),
        ({"type": "object", "additionalProperties": {"type": "string"}}, ("additionalProperties",), "false"),
        (obj(x={"$ref": "https://example.com/s.json"}), ("properties", "x", "$ref"), "local"),
        (obj(x={"$ref": "#/$defs/Missing"}), ("properties", "x", "$ref"), "does not resolve"),
        ({"$defs": {"N": obj(next={"$ref": "#/$defs/N"})}, "$ref": "#/$defs/N"}, ("$defs", "N", "properties", "next", "$ref"), "recursive"),
        (obj(e={"enum": [{"a": 1}]}), ("properties", "e", "enum", 0), "strings, numbers"),
        (obj(e={"enum": []}), ("properties", "e", "enum"), "non-empty"),
        ({"type": "object", "properties": {}, "required": ["ghost"]}, ("required",), "'ghost'"),
        (obj(x={"not": {"type": "string"}}), ("properties", "x", "not"), "not a supported"),
        (obj(x={}), ("properties", "x"), "needs a type"),
        (obj(x={"type": "date"}), ("properties", "x", "type"), "must be one of"),
        (obj(s={"type": "string", "pattern": "(?=a)b"}), ("properties", "s", "pattern"), "lookahead"),
        (
            {"allOf": [{"properties": {"a": {"type": "string"}}, "additionalProperties": False}, {"properties": {"b": {"type": "string"}}}]},
            ("allOf", 0, "additionalProperties"),
            "no document fits",
        ),
        (
            {"allOf": [obj(a={"enum": ["x"]}), {"properties": {"a": {"type": "string"}}}]},
            ("allOf", 1, "properties", "a"),
            "defined differently",
        ),
        ({"allOf": [{"type": "object", "properties": [1]}]}, ("allOf", 0), "properties must be an object"),
        ({**obj(a={"type": "string"}), "anyOf": [obj(a={"type": "string"})]}, ("type",), "beside anyOf"),
        ({"$ref": "#/$defs/A", "required": ["x"], "$defs": {"A": obj()}}, ("required",), "beside $ref"),
        (obj(e={"type": "string", "enum": ["a", 3]}), ("properties", "e", "enum", 1), "not of type string"),
        (obj(s={"type": "string", "properties": {}}), ("properties", "s", "properties"), "does not apply"),
    ],
)  # fmt: skip
def test_a_part_that_cannot_be_enforced_is_refused_with_its_path(
    schema: dict[str, Any], path: tuple[Any, ...], fragment: str
) -> None:
    with pytest.raises(SchemaError) as exc:
        json_schema_grammar(schema)
    assert exc.value.path == path
    assert fragment in exc.value.message
    where = ".".join(str(p) for p in path)
    assert exc.value.at("output_config.format.schema").startswith(
        f"output_config.format.schema.{where}: "
    )


def test_a_tool_schemas_error_names_the_tool() -> None:
    good = obj(city={"type": "string"})
    bad = obj(n={"type": "integer", "maximum": 9})
    with pytest.raises(SchemaError) as exc:
        tool_call_grammar([("a", good), ("b", bad)])
    assert exc.value.path == (1, "properties", "n", "maximum")


def test_one_schema_is_compiled_once() -> None:
    schema = obj(label={"enum": ["spam", "ham"]}, score={"type": "number"})
    json_schema_grammar(dict(schema))
    before = js._cache.hits
    for _ in range(100):
        json_schema_grammar(dict(schema))
    assert js._cache.hits == before + 100


def test_property_order_is_the_schemas() -> None:
    """Two schemas that differ only in property order are two grammars (order is kept)."""
    a = json_schema_grammar(obj(x={"type": "string"}, y={"type": "string"}))
    b = json_schema_grammar(obj(y={"type": "string"}, x={"type": "string"}))
    assert a != b and a.index('"\\"x\\""') < a.index('"\\"y\\""')


def test_pattern_rules_never_take_another_rules_name() -> None:
    """A property whose rule name looks like a pattern helper's keeps its own rule."""
    schema = obj(
        **{"p1-char1": {"type": "integer"}, "p1": {"type": "string", "pattern": '^[a"]+$'}}
    )
    grammar = json_schema_grammar(schema)
    rules = dict(line.split(" ::= ", 1) for line in grammar.splitlines() if " ::= " in line)
    assert len(rules) == len([line for line in grammar.splitlines() if " ::= " in line])
    assert rules["s-root-object-p1-char1"] == "integer"
