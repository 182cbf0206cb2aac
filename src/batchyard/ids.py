"""Identifiers in the shapes the hosted API uses (`msgbatch_…`, `msg_…`, `req_…`)."""

from __future__ import annotations

import secrets

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _random_base62(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_id(prefix: str, length: int = 24) -> str:
    return f"{prefix}_01{_random_base62(length - 2)}"


def batch_id() -> str:
    return new_id("msgbatch")


def message_id() -> str:
    return new_id("msg")


def request_id() -> str:
    return new_id("req")
