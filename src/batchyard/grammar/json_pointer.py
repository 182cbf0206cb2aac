"""A local `$ref` of a JSON schema (`#/$defs/Name`, any JSON pointer into the schema)
resolved: shared by the grammar compiler and the fake engine's example maker."""

from __future__ import annotations

from typing import Any


def resolve_local_ref(root: Any, ref: str) -> tuple[tuple[str, ...], Any] | None:
    """What a local `$ref` (`#/$defs/Name`, any JSON pointer into `root`) names, with the
    keys leading to it; None if it names nothing."""
    if ref == "#":
        return (), root
    keys = tuple(p.replace("~1", "/").replace("~0", "~") for p in ref[1:].lstrip("/").split("/"))
    target = root
    for key in keys:
        if isinstance(target, dict) and key in target:
            target = target[key]
        elif isinstance(target, list) and key.isdigit() and int(key) < len(target):
            target = target[int(key)]
        else:
            return None
    return keys, target
