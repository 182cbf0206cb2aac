"""Typed wire structs: one source for validation, encoding and (later) the OpenAPI document."""
