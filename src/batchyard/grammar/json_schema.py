"""JSON schemas as GBNF grammars: the subset the hosted structured-outputs feature
supports, every part of it enforced, anything else refused with the path to it.

The subset (as the hosted API documents it): the seven types (and lists of them),
`enum` and `const` of plain values, `anyOf`, `allOf` of objects, local `$ref` into
`$defs`/`definitions` (not recursive), `properties` with `required` and
`additionalProperties: false`, `items` with `minItems` 0 or 1, the string formats
in `json_rules.FORMATS` and `pattern` (`grammar/regex.py`), annotations (`description`,
`title`, `default`, …). Numeric bounds, string lengths and other array or object
constraints are refused: a grammar cannot enforce them, and an answer that did not
keep them would be a silent downgrade.

A generated document lists the properties in the schema's order, each optional
one present or not; whitespace between tokens is bounded (one newline and an
indent at most), so a model cannot spin on blanks; strings never hold a raw
control character, so every finished answer parses.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from batchyard.grammar.cache import ByteBoundedCache
from batchyard.grammar.json_literals import gbnf_literal, json_literal, json_text, json_types
from batchyard.grammar.json_pointer import resolve_local_ref
from batchyard.grammar.json_rules import BASE_RULES, FORMATS
from batchyard.grammar.subset import (
    ANNOTATIONS,
    KEYWORDS_OF,
    REFUSED,
    STRUCTURE,
    TYPES,
)

Path = tuple[str | int, ...]


class SchemaError(ValueError):
    """A schema (or part of one) that cannot be enforced; `path` leads to it."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message

    def at(self, where: str) -> str:
        """The message with the full path, `where` being the schema's own place."""
        tail = "".join(f".{p}" for p in self.path)
        return f"{where}{tail}: {self.message}"


def _alone(schema: dict[str, Any], path: Path, *keys: str) -> None:
    """Refuse keywords beside `keys` that would be ignored (annotations are fine)."""
    for key in schema:
        if key not in keys and key not in ANNOTATIONS:
            raise SchemaError(
                (*path, key),
                f"is not supported beside {keys[0]} (move it into the schemas it applies to)",
            )


class GrammarBuilder:
    """Rules for one grammar, from one or more schemas (each its own `$ref` root)."""

    def __init__(self) -> None:
        self.rules: dict[str, str] = {}
        self._root: dict[str, Any] = {}
        self._refs: dict[str, str] = {}
        self._resolving: set[str] = set()
        self._depth = 0

    def value(self, schema: Any, hint: str) -> str:
        """A rule for the JSON text of a document valid against `schema` (its own root)."""
        self._root, self._refs, self._resolving = schema, {}, set()
        return self._visit(schema, (), hint)

    def grammar(self, root: str) -> str:
        body = "\n".join(f"{name} ::= {rule}" for name, rule in self.rules.items())
        return f"root ::= {root}\n{body}\n{BASE_RULES.strip()}\n"

    # --- rules -------------------------------------------------------------------

    def _rule(self, hint: str, body: str) -> str:
        base = re.sub(r"[^a-zA-Z0-9]+", "-", hint).strip("-").lower() or "s"
        name, n = f"s-{base}", 1
        while name in self.rules:
            n += 1
            name = f"s-{base}-{n}"
        self.rules[name] = body
        return name

    def _visit(self, schema: Any, path: Path, hint: str) -> str:
        if self._depth >= MAX_SCHEMA_DEPTH:
            raise SchemaError(path, f"schemas nest deeper than {MAX_SCHEMA_DEPTH} levels")
        self._depth += 1
        try:
            return self._visit_one(schema, path, hint)
        finally:
            self._depth -= 1

    def _visit_one(self, schema: Any, path: Path, hint: str) -> str:
        if not isinstance(schema, dict):
            raise SchemaError(path, "a schema must be an object")
        for key in schema:
            if key in REFUSED:
                raise SchemaError((*path, key), REFUSED[key])
            if key not in STRUCTURE and key not in ANNOTATIONS:
                raise SchemaError((*path, key), "is not a supported JSON schema keyword")
        if "$ref" in schema:
            _alone(schema, path, "$ref")
            return self._ref(schema["$ref"], (*path, "$ref"))
        if "allOf" in schema:
            return self._visit(self._merge(schema, path), path, hint)
        if "anyOf" in schema:
            _alone(schema, path, "anyOf")
            return self._any_of(schema["anyOf"], (*path, "anyOf"), hint)
        if "const" in schema or "enum" in schema:
            return self._literals(schema, path, hint)
        kind = schema.get("type")
        if kind is None:
            raise SchemaError(path, "a schema needs a type, enum, const, anyOf, allOf or $ref")
        kinds = kind if isinstance(kind, list) else [kind]
        if not kinds or any(k not in TYPES for k in kinds):
            raise SchemaError((*path, "type"), f"must be one of {', '.join(TYPES)}")
        for key in schema:
            if key in KEYWORDS_OF and not set(kinds) & KEYWORDS_OF[key]:
                raise SchemaError((*path, key), f"does not apply to type {kind}")
        return self._rule(
            hint, " | ".join(self._typed(schema, k, path, f"{hint}-{k}") for k in kinds)
        )

    def _literals(self, schema: dict[str, Any], path: Path, hint: str) -> str:
        """`const` or `enum`, with a `type` their values must have."""
        key = "const" if "const" in schema else "enum"
        _alone(schema, path, key, "type")
        values = [schema["const"]] if key == "const" else schema["enum"]
        where = (*path, key)
        if not isinstance(values, list) or not values:
            raise SchemaError(where, "must be a non-empty list")
        kind = schema.get("type")
        kinds = set(kind if isinstance(kind, list) else [kind]) if kind is not None else None
        alternatives = []
        for i, value in enumerate(values):
            at = where if key == "const" else (*where, i)
            if kinds is not None and not kinds & json_types(value):
                raise SchemaError(at, f"{json_text(value)} is not of type {kind}")
            alternatives.append(self._constant(value, at))
        return self._rule(hint, " | ".join(alternatives))

    def _typed(self, schema: dict[str, Any], kind: str, path: Path, hint: str) -> str:
        if kind == "object":
            return self._object(schema, path, hint)
        if kind == "array":
            return self._array(schema, path, hint)
        if kind == "string":
            return self._string(schema, path, hint)
        return kind

    def _object(self, schema: dict[str, Any], path: Path, hint: str) -> str:
        extra = schema.get("additionalProperties", False)
        if extra is not False:
            raise SchemaError(
                (*path, "additionalProperties"), "only false is supported for objects"
            )
        properties = schema.get("properties", {})
        if not isinstance(properties, dict):
            raise SchemaError((*path, "properties"), "must be an object")
        required = schema.get("required", [])
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise SchemaError((*path, "required"), "must be a list of property names")
        for name in required:
            if name not in properties:
                raise SchemaError((*path, "required"), f"{name!r} is not in properties")
        members = []
        for name, sub in properties.items():
            value = self._visit(sub, (*path, "properties", name), f"{hint}-{name}")
            kv = self._rule(f"{hint}-{name}-kv", f'{json_literal(name)} ws ":" ws {value} ws')
            members.append((kv, name in required))
        first = self._members(members, hint)
        return f'"{{" ws {first} "}}"' if first else '"{" ws "}"'

    def _members(self, members: list[tuple[str, bool]], hint: str) -> str | None:
        """The properties in order, each optional one there or not, commas between.

        `after` generates the rest once something is written (each item with its
        comma); `start` the rest when nothing is written yet."""
        after: str | None = None
        start: str | None = None
        nullable = True
        for i in range(len(members) - 1, -1, -1):
            kv, required = members[i]
            tail = f" {after}" if after else ""
            if required:
                after_body, start_body, nullable = f'"," ws {kv}{tail}', f"{kv}{tail}", False
            else:
                after_body = f'("," ws {kv})?{tail}'
                start_body = f"{kv}{tail}" + (f" | {start}" if start else "")
                if nullable:
                    start_body = f"({start_body})?"
            after = self._rule(f"{hint}-after-{i}", after_body) if i > 0 else None
            start = self._rule(f"{hint}-from-{i}", start_body)
        return start

    def _array(self, schema: dict[str, Any], path: Path, hint: str) -> str:
        items = schema.get("items")
        item = (
            "json-value" if items is None else self._visit(items, (*path, "items"), f"{hint}-item")
        )
        least = schema.get("minItems", 0)
        if least not in (0, 1) or isinstance(least, bool):
            raise SchemaError((*path, "minItems"), "only 0 or 1 are supported")
        body = f'{item} ws ("," ws {item} ws)*'
        return f'"[" ws {body} "]"' if least else f'"[" ws ({body})? "]"'

    def _string(self, schema: dict[str, Any], path: Path, hint: str) -> str:
        fmt, pattern = schema.get("format"), schema.get("pattern")
        if fmt is not None and pattern is not None:
            raise SchemaError((*path, "pattern"), "format and pattern together are not supported")
        if fmt is not None:
            if fmt not in FORMATS:
                raise SchemaError(
                    (*path, "format"),
                    f"format {fmt!r} is not supported (supported: {', '.join(FORMATS)})",
                )
            return f'"\\"" {FORMATS[fmt]} "\\""'
        if pattern is not None:
            if not isinstance(pattern, str):
                raise SchemaError((*path, "pattern"), "must be a string")
            from batchyard.grammar.regex import pattern_rules
            from batchyard.grammar.regex_tree import UnsupportedPattern

            # "pN" names, and their helpers "pN-…", are never made by `_rule` ("s-…")
            name = f"p{sum(n.startswith('p') for n in self.rules) + 1}"
            try:
                rules = pattern_rules(pattern, name)
            except UnsupportedPattern as exc:
                raise SchemaError((*path, "pattern"), str(exc)) from None
            assert not set(rules) & set(self.rules)
            self.rules.update(rules)
            return f'"\\"" {name} "\\""'
        return "string"

    def _constant(self, value: Any, path: Path) -> str:
        if value is not None and not isinstance(value, str | int | float | bool):
            raise SchemaError(path, "values must be strings, numbers, booleans or null")
        return json_literal(value)

    def _any_of(self, variants: Any, path: Path, hint: str) -> str:
        if not isinstance(variants, list) or not variants:
            raise SchemaError(path, "must be a non-empty list of schemas")
        alternatives = [self._visit(v, (*path, i), f"{hint}-{i}") for i, v in enumerate(variants)]
        return self._rule(hint, " | ".join(alternatives))

    def _merge(self, schema: dict[str, Any], path: Path) -> dict[str, Any]:
        """`allOf` of objects as one object schema (the hosted API's `allOf`)."""
        parts = schema["allOf"]
        if not isinstance(parts, list) or not parts:
            raise SchemaError((*path, "allOf"), "must be a non-empty list of schemas")
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        if merged.get("type", "object") != "object" or "anyOf" in merged or "$ref" in merged:
            raise SchemaError((*path, "allOf"), "allOf is supported for object schemas alone")
        merged["type"] = "object"
        own, own_required = merged.get("properties", {}), merged.get("required", [])
        if not isinstance(own, dict) or not isinstance(own_required, list):
            raise SchemaError(path, "properties must be an object, required a list")
        properties, required = dict(own), list(own_required)
        for i, part in enumerate(parts):
            where = (*path, "allOf", i)
            if not isinstance(part, dict) or "$ref" in part:
                raise SchemaError(where, "allOf members must be object schemas (no $ref)")
            if part.get("type", "object") != "object" or set(part) - ANNOTATIONS - {
                "type",
                "properties",
                "required",
                "additionalProperties",
            }:
                raise SchemaError(where, "allOf members must be object schemas")
            members = part.get("properties", {})
            if not isinstance(members, dict) or not isinstance(part.get("required", []), list):
                raise SchemaError(where, "properties must be an object, required a list")
            for name, sub in members.items():
                if name in properties and properties[name] != sub:
                    raise SchemaError(
                        (*where, "properties", name),
                        "is defined differently by another allOf member (merge them into one)",
                    )
                properties[name] = sub
        if schema.get("additionalProperties") is False and set(properties) - set(
            schema.get("properties", {})
        ):
            raise SchemaError(
                (*path, "additionalProperties"),
                "false here forbids the properties of the allOf members (no document fits)",
            )
        for i, part in enumerate(parts):
            if part.get("additionalProperties") is False and set(properties) - set(
                part.get("properties", {})
            ):
                raise SchemaError(
                    (*path, "allOf", i, "additionalProperties"),
                    "false here forbids the other members' properties (no document fits);"
                    " put additionalProperties: false on the schema holding allOf",
                )
        for part in parts:
            required += [r for r in part.get("required", []) if r not in required]
        merged["properties"], merged["required"] = properties, required
        return merged

    def _ref(self, ref: Any, path: Path) -> str:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise SchemaError(path, "only local references (#/$defs/…) are supported")
        if ref in self._refs:
            return self._refs[ref]
        if ref in self._resolving or ref == "#":
            raise SchemaError(path, "recursive schemas are not supported")
        found = resolve_local_ref(self._root, ref)
        if found is None:
            raise SchemaError(path, f"{ref} does not resolve")
        keys, target = found
        self._resolving.add(ref)
        try:  # errors inside name the place the reference points to
            rule = self._visit(target, keys, ref.rsplit("/", 1)[-1])
        finally:
            self._resolving.discard(ref)
        self._refs[ref] = rule
        return rule


MAX_SCHEMA_BYTES = 1_000_000
"""The JSON text of the schemas one grammar is made from (an enum of ~70,000 labels)."""
MAX_SCHEMA_DEPTH = 32
"""Schemas inside schemas (through properties, items, anyOf or $ref)."""
CACHE_BYTES = 64 * 1024 * 1024

_cache: ByteBoundedCache[tuple[str, bytes], str | tuple[Path, str]] = ByteBoundedCache(CACHE_BYTES)
"""Grammar text, or the refusal's path and message, by the schema's digest: a batch of
100k requests with one schema compiles it once, and no entry keeps a schema's text."""


def _compiled(kind: str, text: str) -> str:
    """Grammar text for a schema's JSON text; raises SchemaError."""
    if len(text) > MAX_SCHEMA_BYTES:
        raise SchemaError(
            (), f"is {len(text):,} bytes of JSON; at most {MAX_SCHEMA_BYTES:,} are compiled"
        )
    key = (kind, hashlib.blake2b(text.encode(), digest_size=20).digest())
    found = _cache.get(key)
    if found is None:
        try:
            found = _compile(kind, json.loads(text))
        except SchemaError as exc:
            found = (exc.path, exc.message)
        _cache.put(key, found, len(found) if isinstance(found, str) else 256 + len(found[1]))
    if isinstance(found, tuple):
        raise SchemaError(*found)  # a fresh one: no traceback holding the schema
    return found


def _compile(kind: str, spec: Any) -> str:
    builder = GrammarBuilder()
    if kind == "schema":
        return builder.grammar(builder.value(spec, "root"))
    if kind == "tools":
        return builder.grammar(_calls(builder, spec, "input"))
    call = builder._rule("call", _calls(builder, spec["tools"], "arguments"))
    more = f' (ws "," ws {call})*' if spec["parallel"] else ""
    open_, close = (gbnf_literal(spec[k]) for k in ("open", "close"))
    return builder.grammar(f'{open_} ws "[" ws {call}{more} ws "]" ws {close}')


def _calls(builder: GrammarBuilder, tools: list[Any], key: str) -> str:
    """`{"name": <a tool's name>, "<key>": <valid against its schema>}`, one of `tools`."""
    calls = []
    for k, (name, schema) in enumerate(tools):
        try:
            value = builder.value(schema, f"{name}-input")
        except SchemaError as exc:
            raise SchemaError((k, *exc.path), exc.message) from None
        calls.append(
            f'"{{" ws "\\"name\\"" ws ":" ws {json_literal(name)} ws ","'
            f' ws "\\"{key}\\"" ws ":" ws {value} ws "}}"'
        )
    return " | ".join(calls)


def json_schema_grammar(schema: dict[str, Any]) -> str:
    """GBNF for the JSON documents valid against `schema`; raises SchemaError."""
    return _compiled("schema", json.dumps(schema))


def tool_call_grammar(tools: list[tuple[str, dict[str, Any]]]) -> str:
    """GBNF for `{"name": <one of the tools>, "input": <valid against its schema>}`;
    raises SchemaError with a path that starts at the tool's index in `tools`."""
    return _compiled("tools", json.dumps(tools))


def tool_block_grammar(
    tools: list[tuple[str, dict[str, Any]]], *, parallel: bool, open_: str, close: str
) -> str:
    """GBNF for `<open> [{"name": …, "arguments": …}, …] <close>`: the calls a model
    chooses to make (one unless `parallel`), each valid against its tool's schema;
    raises SchemaError with a path that starts at the tool's index in `tools`."""
    spec = {"tools": tools, "parallel": parallel, "open": open_, "close": close}
    return _compiled("tool-block", json.dumps(spec))


def json_object_grammar() -> str:
    """GBNF for any JSON object (the OpenAI dialect's `json_object` mode)."""
    return f"root ::= json-object\n{BASE_RULES.strip()}\n"
