"""The parts the hardening is made of, alone: the nesting guard, the schema cache bounded
by bytes, the loopback guard, and how bodies are received."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import Message

from batchyard.api.bodies import Bodies
from batchyard.api.loopback import LoopbackGuard, loopback_hosts
from batchyard.config import BodyLimits
from batchyard.errors import Overloaded, PermissionDenied, RequestTimeout, RequestTooLarge
from batchyard.grammar import json_schema as js
from batchyard.grammar.cache import ByteBoundedCache
from batchyard.grammar.json_schema import SchemaError, json_schema_grammar
from batchyard.wire import json_limits
from batchyard.wire.errors import InvalidParams

# --- nesting ---------------------------------------------------------------------


def test_the_depth_guard_names_where_a_value_goes_too_deep() -> None:
    value: dict[str, object] = {"tools": [{"input_schema": {"x": [[[[[]]]]]}}]}
    json_limits.check_depth(value, limit=9)  # nine containers, the innermost list the 9th
    with pytest.raises(InvalidParams) as exc:
        json_limits.check_depth(value, limit=5)
    assert str(exc.value).startswith("tools.0.input_schema.x.0")


def test_past_the_decoders_own_limit_the_place_is_found_in_the_text() -> None:
    raw = b'{"model": "m", "tools": [{"name": "t", "input_schema": ' + b"[" * 5000 + b"]" * 5000
    raw += b"}]}"
    with pytest.raises(InvalidParams) as exc:
        json_limits.decode(msgspec.json.Decoder(), raw)
    assert str(exc.value).startswith("tools.0.input_schema.0.0"), str(exc.value)


def test_numbers_out_of_range_are_refused_while_decoding() -> None:
    for raw in (b'{"a": 1e999}', b'{"a": ' + b"9" * 5000 + b"}"):
        with pytest.raises(msgspec.ValidationError):
            json_limits.decode(msgspec.json.Decoder(), raw)


def test_arguments_in_a_string_are_guarded_too() -> None:
    assert json_limits.loads('{"a": [1]}', "args") == {"a": [1]}
    with pytest.raises(InvalidParams, match=r"^args"):
        json_limits.loads("[" * 2000 + "]" * 2000, "args")


# --- schemas ---------------------------------------------------------------------


def test_the_schema_cache_holds_bytes_not_entries() -> None:
    cache: ByteBoundedCache[int, str] = ByteBoundedCache(1000)
    for i in range(50):
        cache.put(i, "x" * 100, 100)
    assert cache.size <= 1000 and len(cache) == 10
    assert cache.get(49) is not None and cache.get(0) is None
    cache.put(99, "y" * 200, 200)  # over an eighth: not kept
    assert cache.get(99) is None


def test_a_refused_schema_is_cached_without_its_text() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer", "maximum": 3}}}
    for _ in range(2):
        with pytest.raises(SchemaError) as exc:
            json_schema_grammar(schema)
        assert exc.value.__traceback__ is not None and exc.value.__context__ is None
    held = [v for v in js._cache._entries.values() if isinstance(v[0], tuple)]
    assert held and all(isinstance(v[0][1], str) and len(v[0][1]) < 200 for v in held)


def test_schemas_too_large_or_too_deep_are_refused_before_compiling() -> None:
    big = {"enum": [f"label-{i}" for i in range(100_000)]}
    with pytest.raises(SchemaError, match="bytes of JSON"):
        json_schema_grammar(big)
    deep: dict[str, object] = {"type": "string"}
    for _ in range(js.MAX_SCHEMA_DEPTH + 1):
        deep = {"type": "array", "items": deep}
    with pytest.raises(SchemaError, match="nest deeper"):
        json_schema_grammar(deep)
    chain = {f"d{i}": {"$ref": f"#/$defs/d{i + 1}"} for i in range(60)}
    chain["d60"] = {"type": "string"}
    with pytest.raises(SchemaError, match="nest deeper"):
        json_schema_grammar({"$ref": "#/$defs/d0", "$defs": chain})


# --- --no-auth -------------------------------------------------------------------


def test_the_loopback_guard_takes_only_its_own_host() -> None:
    guard = LoopbackGuard(loopback_hosts("127.0.0.1", 8000))
    guard.check(Headers({"host": "127.0.0.1:8000"}))
    guard.check(Headers({"host": "localhost:8000", "origin": "http://localhost:8000"}))
    for headers in (
        {"host": "evil.example:8000"},
        {"host": "127.0.0.1:8001"},
        {"host": "127.0.0.1:8000", "origin": "https://evil.example"},
        {"host": "127.0.0.1:8000", "origin": "null"},
        {"host": "127.0.0.1:8000", "sec-fetch-site": "cross-site"},
        {},
    ):
        with pytest.raises(PermissionDenied):
            guard.check(Headers(headers))
    assert "[::1]:9000" in loopback_hosts("::1", 9000)


# --- bodies ----------------------------------------------------------------------


def request_of(messages: list[Message], delay: float = 0.0) -> Request:
    async def receive() -> Message:
        if delay:
            await asyncio.sleep(delay)
        return messages.pop(0) if messages else {"type": "http.request", "body": b""}

    return Request({"type": "http", "method": "POST", "path": "/", "headers": []}, receive)


def chunks(*parts: bytes) -> list[Message]:
    return [
        {"type": "http.request", "body": p, "more_body": i < len(parts) - 1}
        for i, p in enumerate(parts)
    ]


@pytest.mark.anyio
async def test_a_body_slower_than_the_deadline_is_a_408() -> None:
    bodies = Bodies(BodyLimits(timeout=0.2))
    stream = bodies.stream(
        request_of(chunks(b"a", b"b", b"c"), delay=0.15), 10, RequestTooLarge(), keep=True
    )
    with pytest.raises(RequestTimeout):
        async for _ in stream:
            pass
    assert bodies.reading == 0 and bodies.held == 0


@pytest.mark.anyio
async def test_bodies_at_once_and_bytes_held_are_bounded_and_given_back() -> None:
    bodies = Bodies(BodyLimits(max_reads=1, max_bytes=4))
    first = bodies.stream(request_of(chunks(b"ab", b"cd")), 10, RequestTooLarge(), keep=True)
    assert await anext(first) == b"ab"
    with pytest.raises(Overloaded):  # a second body while the first is received
        await anext(bodies.stream(request_of(chunks(b"x")), 10, RequestTooLarge(), keep=True))
    assert await anext(first) == b"cd"
    assert bodies.held == 4
    await first.aclose()
    assert bodies.reading == 0 and bodies.held == 0
    over = bodies.stream(request_of(chunks(b"abc", b"de")), 10, RequestTooLarge(), keep=True)
    with pytest.raises(Overloaded):
        async for _ in over:
            pass
    assert bodies.reading == 0 and bodies.held == 0


def test_plainly_shallow_never_passes_what_decode_would_refuse() -> None:
    assert json_limits.plainly_shallow(b'{"model": "m", "messages": [{"content": "x"}]}')
    assert not json_limits.plainly_shallow(b"[" * 70 + b"]" * 70)


@pytest.mark.anyio
async def test_a_refused_upload_gives_its_slot_back_at_once() -> None:
    from batchyard.api.bodies import bodies_of
    from batchyard.api.uploads import read_form

    boundary = b"xyz"
    head = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n'
    parts = chunks(head, b"a" * 5000, b"b" * 5000, b"never read")
    request = Request(
        {
            "type": "http",
            "method": "POST",
            "path": "/v1/files",
            "headers": [(b"content-type", b"multipart/form-data; boundary=" + boundary)],
        },
        request_of(parts).receive,
    )
    with pytest.raises(RequestTooLarge):
        await read_form(request, 6000, RequestTooLarge("too large"))
    assert parts and parts[-1]["body"] == b"never read"  # reading stopped at the limit
    assert bodies_of(request).reading == 0 and bodies_of(request).held == 0
