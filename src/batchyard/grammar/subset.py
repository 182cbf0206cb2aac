"""The JSON schema keywords of the hosted structured-outputs subset: what shapes the
document, what only annotates it, and what is refused (with the reason given)."""

from __future__ import annotations

PRIMITIVE = {"string", "integer", "number", "boolean", "null"}
TYPES = (*PRIMITIVE, "object", "array")
ANNOTATIONS = {
    "title",
    "description",
    "default",
    "examples",
    "$comment",
    "$schema",
    "$id",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$defs",
    "definitions",
}
STRUCTURE = {
    "type",
    "enum",
    "const",
    "anyOf",
    "allOf",
    "$ref",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "format",
    "pattern",
}
REFUSED = {
    **dict.fromkeys(
        ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"),
        "numerical constraints are not supported",
    ),
    **dict.fromkeys(("minLength", "maxLength"), "string length constraints are not supported"),
    **dict.fromkeys(
        ("maxItems", "uniqueItems", "contains", "minContains", "maxContains", "prefixItems"),
        "array constraints beyond minItems 0 or 1 are not supported",
    ),
    "oneOf": "oneOf is not supported; use anyOf",
}


KEYWORDS_OF = {
    "properties": {"object"},
    "required": {"object"},
    "additionalProperties": {"object"},
    "items": {"array"},
    "minItems": {"array"},
    "format": {"string"},
    "pattern": {"string"},
}
"""The keywords that apply to only some types."""
