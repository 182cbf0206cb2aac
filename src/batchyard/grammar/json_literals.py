"""JSON values as GBNF literals of their text, and the schema types a JSON value has."""

from __future__ import annotations

import json
from typing import Any


def gbnf_literal(text: str) -> str:
    """`text` as a GBNF string literal."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def json_text(value: Any) -> str:
    """`value` as JSON text, non-ASCII characters as themselves."""
    return json.dumps(value, ensure_ascii=False)


def json_literal(value: Any) -> str:
    """The GBNF literal of `value`'s JSON text."""
    return gbnf_literal(json_text(value))


def json_types(value: Any) -> set[str]:
    """The `type`s of a JSON schema that `value` is an instance of."""
    if value is None:
        return {"null"}
    if isinstance(value, bool):
        return {"boolean"}
    if isinstance(value, int):
        return {"integer", "number"}
    if isinstance(value, float):
        return {"number", "integer"} if value.is_integer() else {"number"}
    if isinstance(value, str):
        return {"string"}
    return {"object"} if isinstance(value, dict) else {"array"}
