"""Deterministic JSON documents valid against a JSON Schema: the fake engine's answers
under `output_config.format` and its forced tool calls.

It covers the subset of JSON Schema the hosted Anthropic API enforces: `object`
(every property filled in, which is valid whether it is `required` or not), `array`
(`items`, `prefixItems`, one item unless `maxItems` says none), `string` (the
hosted formats, `pattern`), `integer`, `number`, `boolean`, `null`, `enum`,
`const`, `anyOf`/`oneOf` (one branch), `allOf` (merged), local `$ref`s and type
lists. Strings are words of the prompt and numbers are drawn from a series seeded
by the request's digest, so the same request gives the same document.
"""

from __future__ import annotations

import hashlib
import importlib
import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from batchyard.grammar.json_pointer import resolve_local_ref

Schema = dict[str, Any] | bool

MAX_DEPTH = 32
"""Deeper than this is a recursion without end (the hosted API refuses recursive schemas)."""
_SHALLOW = 8
MAX_STEPS = 20_000
"""Schemas resolved for one document: `$ref`s to `$defs` that each use the next several
times make a document (and its making) grow exponentially with a small schema."""
"""From this depth down an array gets only its `minItems`, so a recursive schema can end."""

# The stdlib's own regex parser: a `pattern` is spelled from its parse tree.
_sre: Any = importlib.import_module("re._parser")


class UnsupportedSchema(ValueError):
    """No instance of the schema can be made here (`false`, an endless recursion,
    a remote `$ref`, a `pattern` with no simple example)."""


def example(schema: Schema, words: Sequence[str], seed: int) -> Any:
    """A JSON value valid against `schema`, the same for the same `words` and `seed`."""
    return _Maker(schema, words, seed).value(schema, 0)


class _Maker:
    """One document's making: the root (for `$ref`s), the words and the draws so far."""

    def __init__(self, root: Schema, words: Sequence[str], seed: int) -> None:
        self.root = root
        self.words = [w for w in words if w] or [f"{seed:08x}"]
        self.seed = seed
        self.draws = 0
        self.cursor = 0
        self.steps = 0

    def digest(self, size: int) -> bytes:
        """The next `size` bytes of the request's deterministic series."""
        self.draws += 1
        key = f"{self.seed}:{self.draws}".encode()
        return hashlib.blake2b(key, digest_size=size).digest()

    def draw(self, n: int) -> int:
        """The next number of the series, in [0, n)."""
        return int.from_bytes(self.digest(8)) % n

    def text(self, count: int = 2) -> str:
        """The next `count` words of the prompt (wrapping around)."""
        picked = [self.words[(self.cursor + i) % len(self.words)] for i in range(count)]
        self.cursor += count
        return " ".join(picked)

    def label(self) -> str:
        """A word of the prompt fit for a host name or an e-mail's local part (short enough
        for the grammar of `grammar/json_schema.py` too)."""
        return re.sub(r"[^a-z0-9]", "", self.text(1).lower())[:20] or "user"

    def value(self, schema: Schema, depth: int) -> Any:
        s = self.resolve(schema, depth)
        if "const" in s:
            return s["const"]
        if "enum" in s:
            if not s["enum"]:
                raise UnsupportedSchema("an empty `enum` admits no value")
            return s["enum"][self.draw(len(s["enum"]))]
        make = _MAKERS.get(_kind(s))
        if make is None:
            raise UnsupportedSchema(f"type {s['type']!r}")
        return make(self, s, depth)

    def resolve(self, schema: Schema, depth: int) -> dict[str, Any]:
        """`schema` with its `$ref`, `allOf` and `anyOf` folded in: one plain schema."""
        if depth > MAX_DEPTH:
            raise UnsupportedSchema(f"nests deeper than {MAX_DEPTH} levels (a recursive $ref?)")
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise UnsupportedSchema(f"a document would take over {MAX_STEPS:,} schemas to make")
        if schema is False:
            raise UnsupportedSchema("`false` admits no value")
        s = {} if schema is True else dict(schema)
        if "$ref" in s:
            s = _merge(s, self.resolve(self.target(s.pop("$ref")), depth + 1))
        for part in s.pop("allOf", None) or []:
            s = _merge(s, self.resolve(part, depth + 1))
        branches = s.pop("anyOf", None) or s.pop("oneOf", None)
        if branches:
            s = _merge(s, self.resolve(branches[self.draw(len(branches))], depth + 1))
        return s

    def target(self, ref: str) -> Schema:
        """What a local `$ref` (`#/$defs/Name`, `#/definitions/Name`, any JSON pointer) names."""
        if not ref.startswith("#"):
            raise UnsupportedSchema(f"$ref {ref!r}: only local references are resolved")
        found = resolve_local_ref(self.root, ref)
        node = found[1] if found is not None else None
        if node is None:
            raise UnsupportedSchema(f"$ref {ref!r}: names nothing in the schema")
        if not isinstance(node, dict | bool):
            raise UnsupportedSchema(f"$ref {ref!r}: not a schema")
        return node

    def object(self, s: dict[str, Any], depth: int) -> dict[str, Any]:
        out = {k: self.value(v, depth + 1) for k, v in (s.get("properties") or {}).items()}
        for key in s.get("required") or []:
            if key not in out:  # required but not described: any value
                out[key] = self.text()
        return out

    def array(self, s: dict[str, Any], depth: int) -> list[Any]:
        low = int(s.get("minItems", 0))
        prefix = s.get("prefixItems") or []
        count = max(low if depth >= _SHALLOW else max(1, low), len(prefix))
        if "maxItems" in s:
            count = min(count, int(s["maxItems"]))
        out = [self.value(p, depth + 1) for p in prefix[:count]]
        items = s.get("items", True)
        if items is not False:
            out += [self.value(items, depth + 1) for _ in range(count - len(out))]
        return out

    def string(self, s: dict[str, Any], depth: int) -> str:
        make = _FORMATS.get(s.get("format", ""))
        if make is not None:
            return make(self)
        if "pattern" in s:
            return pattern_example(s["pattern"])
        return self.text()


def _types(s: dict[str, Any]) -> list[str]:
    kind = s.get("type")
    return [] if kind is None else [kind] if isinstance(kind, str) else list(kind)


_IMPLIED = (
    (("properties", "required", "additionalProperties"), "object"),
    (("items", "prefixItems", "minItems", "maxItems"), "array"),
)


def _kind(s: dict[str, Any]) -> str:
    """The type to make: the first listed that is not `null`, else what the keywords imply."""
    types = _types(s)
    if types:
        return next((t for t in types if t != "null"), "null")
    return next((kind for keys, kind in _IMPLIED if any(k in s for k in keys)), "string")


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """One schema asking for both (`allOf`): properties and `required` joined, `type`
    and `enum` intersected; for any other keyword `a` wins."""
    out = {**b, **a}
    if "properties" in a and "properties" in b:
        props = dict(b["properties"])
        for key, sub in a["properties"].items():
            props[key] = {"allOf": [props[key], sub]} if key in props else sub
        out["properties"] = props
    if "required" in a and "required" in b:
        out["required"] = list(dict.fromkeys([*a["required"], *b["required"]]))
    if "type" in a and "type" in b:
        theirs = _types(b) + (["integer"] if "number" in _types(b) else [])
        both = [t for t in _types(a) if t in theirs] + (
            ["integer"] if "number" in _types(a) and "integer" in _types(b) else []
        )
        if not both:
            raise UnsupportedSchema(f"`allOf` of types {a['type']!r} and {b['type']!r}")
        out["type"] = both
    if "enum" in a and "enum" in b:
        out["enum"] = [v for v in a["enum"] if v in b["enum"]]
    return out


def _date(m: _Maker) -> str:
    return f"{2000 + m.draw(30)}-{1 + m.draw(12):02d}-{1 + m.draw(28):02d}"


def _time(m: _Maker) -> str:
    return f"{m.draw(24):02d}:{m.draw(60):02d}:{m.draw(60):02d}Z"


_FORMATS: dict[str, Callable[[_Maker], str]] = {
    "date": _date,
    "time": _time,
    "date-time": lambda m: f"{_date(m)}T{_time(m)}",
    "duration": lambda m: f"P{1 + m.draw(9)}DT{m.draw(24)}H{m.draw(60)}M",
    "email": lambda m: f"{m.label()}@example.com",
    "hostname": lambda m: f"{m.label()}.example.com",
    "uri": lambda m: f"https://example.com/{m.label()}",
    "ipv4": lambda m: f"192.0.2.{1 + m.draw(254)}",
    "ipv6": lambda m: f"2001:db8::{1 + m.draw(0xFFFF):x}",
    "uuid": lambda m: str(uuid.UUID(bytes=m.digest(16), version=4)),
}
"""An example of each string `format` the hosted API enforces (documentation ranges
for addresses, `example.com` for names)."""

_MAKERS: dict[str, Callable[[_Maker, dict[str, Any], int], Any]] = {
    "object": _Maker.object,
    "array": _Maker.array,
    "string": _Maker.string,
    "integer": lambda m, s, depth: m.draw(100),
    "number": lambda m, s, depth: m.draw(10_000) / 100,
    "boolean": lambda m, s, depth: m.draw(2) == 1,
    "null": lambda m, s, depth: None,
}


# --- pattern -------------------------------------------------------------------

_CATEGORIES = {
    "CATEGORY_DIGIT": r"\d",
    "CATEGORY_NOT_DIGIT": r"\D",
    "CATEGORY_SPACE": r"\s",
    "CATEGORY_NOT_SPACE": r"\S",
    "CATEGORY_WORD": r"\w",
    "CATEGORY_NOT_WORD": r"\W",
}
_CANDIDATES = "a0A_ -.xb1!"


def pattern_example(pattern: str) -> str:
    """A string `pattern` finds a match in: the shortest its parse tree spells
    (anchors and lookarounds skipped, each repeat at its minimum), checked."""
    try:
        text = _spell(_sre.parse(pattern), {})
    except re.error as exc:
        raise UnsupportedSchema(f"pattern {pattern!r}: {exc}") from None
    if re.search(pattern, text) is None:
        raise UnsupportedSchema(f"pattern {pattern!r}: no simple example")
    return text


def _spell(items: Any, groups: dict[int, str]) -> str:
    out: list[str] = []
    for op, av in items:
        name = op.name
        if name == "LITERAL":
            out.append(chr(av))
        elif name == "NOT_LITERAL":
            out.append("b" if chr(av) == "a" else "a")
        elif name == "ANY":
            out.append("a")
        elif name == "IN":
            out.append(_class_member(av))
        elif name == "BRANCH":
            out.append(_spell(av[1][0], groups))
        elif name == "SUBPATTERN":
            group, _, _, sub = av
            out.append(_spell(sub, groups))
            if group:
                groups[group] = out[-1]
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, _, sub = av
            out.append(_spell(sub, groups) * low)
        elif name == "ATOMIC_GROUP":
            out.append(_spell(av, groups))
        elif name == "GROUPREF":
            out.append(groups.get(av, ""))
        elif name not in ("AT", "ASSERT", "ASSERT_NOT"):
            raise UnsupportedSchema(f"regex construct {name}")
    return "".join(out)


def _class_member(items: Any) -> str:
    """A character of a `[...]` class (or of `\\d`, `\\w`, `\\s`)."""
    negate = bool(items and items[0][0].name == "NEGATE")
    members = items[1:] if negate else items
    own: list[str] = [
        chr(av if op.name == "LITERAL" else av[0])
        for op, av in members
        if op.name in ("LITERAL", "RANGE")
    ]
    candidates: list[str] = [*own, *_CANDIDATES]
    for c in candidates:
        if _in_class(members, c) != negate:
            return c
    raise UnsupportedSchema("a character class with no simple member")


def _in_class(members: Any, c: str) -> bool:
    for op, av in members:
        name = op.name
        if (
            (name == "LITERAL" and ord(c) == av)
            or (name == "RANGE" and av[0] <= ord(c) <= av[1])
            or (name == "CATEGORY" and re.fullmatch(_CATEGORIES.get(av.name, "(?!)"), c))
        ):
            return True
    return False
