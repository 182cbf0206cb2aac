"""The one guard on the shape of JSON a client sends, wherever a body, a batch line or a
tool's arguments are decoded: at most `MAX_DEPTH` levels of nesting.

Numbers need no guard of their own: msgspec refuses a number out of the range of a
float or a 64-bit integer (`1e999`, a 5,000-digit integer) while decoding. Nesting does:
msgspec decodes up to Python's recursion limit (~1,000 levels) and raises RecursionError
past it, and below it the code that walks a value (schemas compiled to grammars, values
encoded again, translations) recurses too. So a value deeper than `MAX_DEPTH` is refused
at decode time as a 400 naming the place it goes too deep, before anything walks it.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

import msgspec

from batchyard.wire.errors import InvalidParams

MAX_DEPTH = 64
"""Levels of nesting from a body's top (a Messages request's own structure takes about
six; a JSON schema two a level)."""

_T = TypeVar("_T")
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}:,]')
_SCAN_BYTES = 8 * 1024 * 1024
"""How far into a refused body its deep place is looked for (to name it)."""


def too_deep(path: str, limit: int = MAX_DEPTH) -> InvalidParams:
    where = f"{path}: " if path else ""
    return InvalidParams(f"{where}nests deeper than {limit} levels of JSON arrays and objects")


def decode(
    decoder: msgspec.json.Decoder[_T], raw: bytes | bytearray | memoryview, *, walk: bool = True
) -> _T:
    """`decoder.decode(raw)`, refusing nesting deeper than MAX_DEPTH (InvalidParams naming
    where); msgspec's own errors pass through. `walk=False` leaves the depth below
    Python's recursion limit unchecked (values kept as `Raw`, checked when decoded)."""
    try:
        value = decoder.decode(raw)
    except RecursionError:
        raise too_deep(deep_place(bytes(raw))) from None
    if walk and not plainly_shallow(bytes(raw)):  # the count is far cheaper than the walk
        check_depth(value)
    return value


def plainly_shallow(raw: bytes) -> bool:
    """True when `raw` has too few brackets to nest deeper than MAX_DEPTH (a count at C
    speed, no decoding); False means only that `decode` must look."""
    return raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH


def loads(text: str | bytes, where: str) -> Any:
    """`json.loads` for JSON a client sent inside a string (a tool call's arguments), its
    depth checked; raises ValueError for what is not JSON, InvalidParams for too deep."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise too_deep(where) from None
    check_depth(value, where)
    return value


def check_depth(value: object, where: str = "", limit: int = MAX_DEPTH) -> None:
    """Raises InvalidParams naming the first place `value` nests deeper than `limit` (its
    lists, dicts and msgspec structs; a `Raw` is opaque)."""
    stack: list[tuple[object, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            children: Any = node.items()
        elif isinstance(node, list | tuple):
            children = enumerate(node)
        elif isinstance(node, msgspec.Struct):
            children = ((f, getattr(node, f)) for f in node.__struct_fields__)
        else:
            continue
        if len(path) >= limit:
            raise too_deep(_dotted(where, path[:6]) + "…", limit)
        for key, child in children:
            if isinstance(child, dict | list | tuple | msgspec.Struct):
                stack.append((child, (*path, key)))


def deep_place(raw: bytes, limit: int = MAX_DEPTH) -> str:
    """Where in the JSON text `raw` the nesting first passes `limit` (the first few keys
    of the path), or "" if not within its first `_SCAN_BYTES`. Only for refused bodies."""
    path: list[str | int] = []
    key: str | int = ""
    for match in _TOKENS.finditer(raw, 0, _SCAN_BYTES):
        token = match.group()
        if token in (b"[", b"{"):
            path.append(key)
            if len(path) > limit:
                return _dotted("", tuple(path[1:7])) + "…"
            key = 0 if token == b"[" else ""
        elif token in (b"]", b"}"):
            if path:
                key = path.pop()
        elif token == b",":
            key = key + 1 if isinstance(key, int) else ""
        elif token.startswith(b'"') and isinstance(key, str):
            key = token[1:-1].decode("utf-8", "replace")
    return ""


def _dotted(where: str, path: tuple[str | int, ...]) -> str:
    return ".".join([where, *map(str, path)] if where else map(str, path))
