"""The in-band envelopes of stored request `params`: what a batch request holds when it
is not a plain Messages request. The worker opens them before it decodes `params`.

- `{"batchyard_chat": <body>}`: an OpenAI batch line's Chat Completions body as
  received, translated to a Messages request when it runs (so a 100 MB file is not
  translated at upload); `{"batchyard_responses": <body>}` the same for a Responses
  API line.
- `{"batchyard_unservable": <reason>}`: a line no engine here can run (e.g. an
  embeddings line): the worker ends it `errored` with that reason, each on its own.

A Messages request never starts with either key: unknown keys are refused at decode.
"""

from __future__ import annotations

from typing import Any

import msgspec

from batchyard.wire import json_limits
from batchyard.wire.errors import InvalidParams

_CHAT = b'{"batchyard_chat":'


_any: msgspec.json.Decoder[Any] = msgspec.json.Decoder()


def wrap_chat_body(body: bytes) -> bytes:
    """Stored `params` of an OpenAI batch line: its chat body as received."""
    return _CHAT + body + b"}"


_RESPONSES = b'{"batchyard_responses":'


def wrap_responses_body(body: bytes) -> bytes:
    """Stored `params` of an OpenAI batch line of the Responses API: its body as received."""
    return _RESPONSES + body + b"}"


def unwrap_chat_body(params: bytes) -> dict[str, Any]:
    """The chat body an OpenAI batch request's stored `params` hold (InvalidParams if
    they hold none)."""
    kind, body = unwrap_openai_body(params)
    if kind != "chat":
        raise InvalidParams("body: not a Chat Completions request")
    return body


def unwrap_openai_body(params: bytes) -> tuple[str, dict[str, Any]]:
    """What an OpenAI batch request's stored `params` hold: ("chat" or "responses", the
    body as received); InvalidParams if they hold neither."""
    try:
        body = json_limits.decode(_any, params)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise InvalidParams(f"body: {exc}") from None
    for kind in ("chat", "responses"):
        if isinstance(body, dict) and isinstance(inner := body.get(f"batchyard_{kind}"), dict):
            return kind, inner
    raise InvalidParams("body: not a Chat Completions or Responses request")


_UNSERVABLE = b'{"batchyard_unservable":'


def unservable(reason: str) -> bytes:
    """Stored `params` of a request that cannot run here, with the reason."""
    return msgspec.json.encode({"batchyard_unservable": reason})


def unservable_reason(params: bytes) -> str | None:
    if not params.startswith(_UNSERVABLE):
        return None
    reason: str = msgspec.json.decode(params)["batchyard_unservable"]
    return reason
