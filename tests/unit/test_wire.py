"""Create-body parsing, params validation and the fake engine's answers."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from batchyard.engines.fake.engine import FakeEngine
from batchyard.errors import EngineError, InvalidRequest
from batchyard.services.message_batches import parse_create_body
from batchyard.wire.errors import InvalidParams
from batchyard.wire.params import body_as_sent, decode_params, with_model


def p(**kw: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}], **kw}


def test_params_are_kept_as_received() -> None:
    body = b'{"requests":[{"custom_id":"a","params": {"model" : "m",  "x":[1,2]}}]}'
    [request] = parse_create_body(body)
    assert bytes(request.params) == b'{"model" : "m",  "x":[1,2]}'


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        (p(max_tokens=0), "max_tokens"),
        (p(max_tokens="10"), "max_tokens"),
        (p(messages=[]), "messages"),
        (p(messages=[{"role": "user"}]), "messages.0"),
        (
            p(
                messages=[
                    {"role": "user", "content": [{"type": "image", "source": {"type": "base64"}}]}
                ]
            ),
            "messages.0.content.0.source",
        ),
        (p(messages=[{"role": "user", "content": [{"type": "tool_result"}]}]), "tool_use_id"),
        (p(system=5), "system"),
        (p(top_p=2), "top_p"),
        (p(stop_sequences="x"), "stop_sequences"),
        ({"max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}, "model"),
    ],
)
def test_invalid_params(params: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidParams) as exc:
        decode_params(msgspec.json.encode(params))
    assert fragment in str(exc.value)


def test_valid_params_with_tools_and_images() -> None:
    decoded = decode_params(
        msgspec.json.encode(
            p(
                system=[{"type": "text", "text": "be brief"}],
                messages=[
                    {"role": "user", "content": [
                        {"type": "text", "text": "look"},
                        {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                    ]},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]},
                ],
                tools=[{"name": "f", "input_schema": {"type": "object"}}],
            )
        )
    )  # fmt: skip
    assert decoded.system is not None and len(decoded.messages) == 3


def test_a_key_no_messages_request_has_is_refused_by_name() -> None:
    with pytest.raises(InvalidParams, match=r"^some_future_option: Extra inputs are not permitted"):
        decode_params(msgspec.json.encode(p(some_future_option=True)))


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"nope", "not valid JSON"),
        (b'{"requests": []}', "at least one request"),
        (b'{"requests": [{"custom_id": "a", "params": 1}]}', "requests.0.params"),
        (b'{"requests": [{"custom_id": "a/b", "params": {}}]}', "requests.0.custom_id"),
        (b'{"requests": [{"custom_id": "a", "params": {}, "extra": 1}]}', "requests.0"),
    ],
)
def test_structural_errors(body: bytes, fragment: str) -> None:
    with pytest.raises(InvalidRequest) as exc:
        parse_create_body(body)
    assert fragment in exc.value.message


@pytest.mark.anyio
async def test_fake_engine_is_deterministic_and_honours_limits() -> None:
    engine = FakeEngine()
    params = decode_params(
        msgspec.json.encode(
            p(system="sys", messages=[{"role": "user", "content": "one two three"}])
        )
    )
    a, b = await engine.create_message(params), await engine.create_message(params)
    assert a.content == b.content and a.id != b.id
    assert a.usage.input_tokens == 4  # "sys" + three words
    assert a.stop_reason == "end_turn"

    short = decode_params(msgspec.json.encode(p(max_tokens=2)))
    m = await engine.create_message(short)
    assert m.stop_reason == "max_tokens" and m.usage.output_tokens == 2
    assert m.content[0].text == "fake reply"  # type: ignore[union-attr]

    stop = decode_params(msgspec.json.encode(p(stop_sequences=["to:"])))
    m = await engine.create_message(stop)
    assert m.stop_reason == "stop_sequence" and m.stop_sequence == "to:"
    assert m.content[0].text.endswith(" ")  # type: ignore[union-attr]
    assert "to:" not in m.content[0].text  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_fake_engine_injects_retryable_errors() -> None:
    engine = FakeEngine(error_rate=0.5, seed=3)
    params = decode_params(msgspec.json.encode(p()))
    failures = 0
    for _ in range(200):
        try:
            await engine.create_message(params)
        except EngineError as exc:
            assert exc.retryable
            failures += 1
    assert 60 < failures < 140


TOOL = {"name": "f", "input_schema": {"type": "object", "properties": {"n": {"type": "integer"}}}}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"tool_choice": {"type": "any"}}, "tool_choice: may only be specified while providing tools"),
        ({"tools": [TOOL], "tool_choice": {"type": "tool", "name": "g"}}, "tool_choice.name: no tool named 'g'"),
        ({"tools": [TOOL], "tool_choice": {"type": "sometimes"}}, "tool_choice.type: Input should be"),
        ({"tools": [{"name": "bad name!", "input_schema": {"type": "object"}}]}, "tools.0.name: String should match"),
        ({"tools": [TOOL, TOOL]}, "tools: Tool names must be unique"),
        ({"tools": [{"name": "f", "input_schema": {"type": "array"}}]}, "tools.0.input_schema.type: Input should be 'object'"),
        (
            {"tools": [{**TOOL, "strict": True, "input_schema": {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}}}]},
            "tools.0.input_schema.properties.n.minimum: numerical constraints are not supported",
        ),
        ({"thinking": {"type": "enabled", "budget_tokens": 100}}, "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"),
        ({"max_tokens": 2000, "thinking": {"type": "enabled", "budget_tokens": 4000}}, "`max_tokens` must be greater than `thinking.budget_tokens`"),
        ({"thinking": {"type": "on"}}, "thinking.type: Input should be"),
        ({"output_config": {"format": {"type": "json_schema", "schema": {"type": "integer", "maximum": 3}}}}, "output_config.format.schema.maximum: numerical constraints"),
        ({"output_config": {"format": {"type": "xml"}}}, "output_config.format"),
        ({"output_config": {"effort": "extreme"}}, "output_config.effort"),
        ({"output_config": {"verbosity": 1}}, "output_config"),
        ({"speed": "ludicrous"}, "speed"),
    ],
)  # fmt: skip
def test_request_checks_name_the_field(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidParams) as exc:
        decode_params(msgspec.json.encode(p(**extra)))
    assert str(exc.value).startswith(message), str(exc.value)


def test_structured_and_tool_requests_that_are_fine_decode() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    decoded = decode_params(
        msgspec.json.encode(
            p(
                max_tokens=3000,
                tools=[{**TOOL, "strict": True}, {"type": "web_search_20250305", "name": "web_search"}],
                tool_choice={"type": "tool", "name": "f", "disable_parallel_tool_use": True},
                thinking={"type": "enabled", "budget_tokens": 1024},
                output_config={"format": {"type": "json_schema", "schema": schema}, "effort": "high"},
                speed="fast",
                inference_geo="eu",
                service_tier="auto",
                metadata={"user_id": "u"},
            )
        )
    )  # fmt: skip
    assert decoded.output_config is not None and decoded.output_config.effort == "high"


def test_the_body_as_sent_travels_with_a_renamed_request() -> None:
    raw = msgspec.json.encode(p(messages=[{"role": "user", "content": [{"type": "text", "text": "x", "extra_field": 1}]}]))  # fmt: skip
    params = decode_params(raw)
    assert body_as_sent(params) == raw
    assert body_as_sent(with_model(params, "other")) == raw
    assert with_model(params, "other").model == "other"
