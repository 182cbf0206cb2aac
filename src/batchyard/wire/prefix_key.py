"""A request's prompt-prefix key: which requests start alike, from their bytes alone.

The key hashes the model, the tools and the first `PREFIX_BYTES` of the prompt as
sent (`system`, then `messages`), cut at the first `cache_control` mark when one
comes sooner (the caller's own word for where the shared part ends). Two requests
with one key share at least that much of their prompt's start, so an engine that
runs them one after the other can serve the second's prefix from its cache; the
scheduler uses it to run such requests together (`store.claims.Grouping`).

It reads the request as JSON bytes without decoding the messages, so computing it
costs little more than the create check's own probe. Any shape works: the Chat
Completions envelope of the OpenAI dialect hashes the same way (its system prompt
is the start of `messages`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence

import msgspec
from typing_extensions import Buffer

PREFIX_BYTES = 1024
"""How much of the prompt the key covers (about 250 tokens): requests sharing less
than that gain little from running together."""

SAMPLE = 256
"""A batch's key is the most common among this many of its requests, evenly spaced."""

_MARK = b'"cache_control"'
_CHAT = b'{"batchyard_chat":'
"""An OpenAI batch line's envelope (`translate.envelope`): the key is its body's."""


class _Prompt(msgspec.Struct):
    model: msgspec.Raw = msgspec.Raw(b"")
    tools: msgspec.Raw = msgspec.Raw(b"")
    system: msgspec.Raw = msgspec.Raw(b"")
    messages: msgspec.Raw = msgspec.Raw(b"")


_decoder = msgspec.json.Decoder(_Prompt)
_blocks = msgspec.json.Decoder(list[msgspec.Raw])


def prefix_key(params: Buffer) -> int | None:
    """The request's key, a signed 64-bit integer (what a BIGINT holds); None when
    `params` is not a JSON object."""
    raw = bytes(params)
    if raw.startswith(_CHAT) and raw.endswith(b"}"):
        raw = raw[len(_CHAT) : -1]
    try:
        prompt = _decoder.decode(raw)
        head = _head(bytes(prompt.system), bytes(prompt.messages))
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    if not bytes(prompt.messages):
        return None  # not a request that runs (an unservable line, say)
    digest = hashlib.blake2b(digest_size=8)
    for part in (bytes(prompt.model), b"\x00", bytes(prompt.tools), b"\x00", head):
        digest.update(part)
    return int.from_bytes(digest.digest(), "big", signed=True)


def _head(system: bytes, messages: bytes) -> bytes:
    """What the key covers: a `system` list of blocks up to and with its first marked
    block; else the first PREFIX_BYTES of system and messages, or less where a mark
    comes sooner."""
    if system.startswith(b"[") and _MARK in system:
        kept = []
        for block in _blocks.decode(system):
            kept.append(bytes(block))
            if _MARK in kept[-1]:
                return b",".join(kept)
    start = system + b"\x00" + messages
    cut = start.find(_MARK, 0, PREFIX_BYTES)
    return start[: cut if cut >= 0 else PREFIX_BYTES]


def batch_prefix(params: Sequence[Buffer]) -> int | None:
    """The most common key among (a sample of) a batch's requests, ties to the
    earliest; None when no two of them share one (nothing to run together)."""
    step = max(1, -(-len(params) // SAMPLE))  # at most SAMPLE of them
    keys = Counter(k for p in params[::step] if (k := prefix_key(p)) is not None)
    if not keys:
        return None
    key, count = keys.most_common(1)[0]
    return key if count > 1 or len(params) == 1 else None
