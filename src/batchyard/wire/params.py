"""Decoding a Messages request body: msgspec's validation in the hosted API's words, the
checks it makes beyond types, and the body as sent kept with the request."""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec

from batchyard.wire import json_limits
from batchyard.wire.cache_control import check_cache_control
from batchyard.wire.errors import InvalidParams, format_validation_error
from batchyard.wire.messages import CountTokensParams, MessageCreateParams
from batchyard.wire.request_checks import check_request

_P = TypeVar("_P", MessageCreateParams, CountTokensParams)
_T = TypeVar("_T")
_params_decoder = msgspec.json.Decoder(MessageCreateParams)


_count_decoder = msgspec.json.Decoder(CountTokensParams)


def decode_body(decoder: msgspec.json.Decoder[_T], raw: bytes | bytearray | memoryview) -> _T:
    """Decode a request body; a problem is an InvalidParams in the hosted API's words."""
    try:
        return json_limits.decode(decoder, raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise InvalidParams(_extra_input(str(exc)) or format_validation_error(exc)) from None


def _decode(decoder: msgspec.json.Decoder[_P], raw: bytes | bytearray | memoryview) -> _P:
    """Decode and check a Messages-shaped body; any problem is an InvalidParams."""
    params = decode_body(decoder, raw)
    if params.messages[0].role != "user":
        raise InvalidParams("messages: the first message must use the `user` role")
    check_cache_control(params)
    check_request(params)
    return params


_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `(.+?)`(?: - at `\$\.?(.*)`)?$")


def _extra_input(error: str) -> str | None:
    """A key no Messages request has, as the hosted API words its refusal."""
    match = _UNKNOWN_FIELD.match(error)
    if match is None:
        return None
    key, at = match.group(1), (match.group(2) or "").replace("[", ".").replace("]", "")
    return f"{at + '.' if at else ''}{key}: Extra inputs are not permitted"


def decode_params(raw: bytes | bytearray | memoryview) -> MessageCreateParams:
    return _kept(_decode(_params_decoder, raw), raw)


def decode_count_params(raw: bytes | bytearray | memoryview) -> MessageCreateParams:
    return _kept(_decode(_count_decoder, raw).as_create_params(), raw)


def _kept(params: MessageCreateParams, raw: bytes | bytearray | memoryview) -> MessageCreateParams:
    params.__dict__["body"] = bytes(raw)
    return params


def body_as_sent(params: MessageCreateParams) -> bytes | None:
    """The JSON the request was decoded from, every block and field as the client sent it
    (for an upstream that takes all of it); None for a request built here."""
    body: bytes | None = params.__dict__.get("body")
    return body


def with_model(params: MessageCreateParams, model: str) -> MessageCreateParams:
    """`params` for another model name, the body as sent kept with it."""
    renamed = msgspec.structs.replace(params, model=model)
    renamed.__dict__.update(params.__dict__)
    return renamed
