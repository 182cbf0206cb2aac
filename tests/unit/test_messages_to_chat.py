"""Anthropic Messages ⇄ Chat Completions, case by case."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from batchyard.translate.chat_answers import chat_usage
from batchyard.translate.chat_ending import usage_from_chat
from batchyard.translate.messages_to_chat import (
    ChatStreamTranslator,
    MalformedReply,
    Untranslatable,
    from_chat_response,
    to_chat_request,
)
from batchyard.wire.messages import TextContent, ThinkingContent, ToolUseContent
from batchyard.wire.params import decode_params
from batchyard.wire.streaming import (
    ContentBlockDelta,
    ContentBlockStart,
    ContentBlockStop,
    MessageDelta,
    SignatureDelta,
    TextDelta,
    ThinkingDelta,
    events_from_message,
    sse,
)


def params(**kw: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}], **kw}


def translate(**kw: Any) -> dict[str, Any]:
    return to_chat_request(decode_params(msgspec.json.encode(params(**kw))), "upstream-m")


IMG = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA="}}
TOOL = {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}

REQUEST_CASES = [
    pytest.param({}, {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}, id="plain"),
    pytest.param(
        {"system": "Be brief."},
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]},
        id="system-string",
    ),
    pytest.param(
        {"system": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]},
        {"messages": [{"role": "system", "content": "A\nB"}, {"role": "user", "content": "hi"}]},
        id="system-blocks",
    ),
    pytest.param(
        {"messages": [
            {"role": "user", "content": "1"},
            {"role": "assistant", "content": "2"},
            {"role": "user", "content": [{"type": "text", "text": "3"}, {"type": "text", "text": "4"}]},
        ]},
        {"messages": [
            {"role": "user", "content": "1"},
            {"role": "assistant", "content": "2"},
            {"role": "user", "content": "3\n4"},
        ]},
        id="multi-turn",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "see"}, IMG]}]},
        {"messages": [{"role": "user", "content": [
            {"type": "text", "text": "see"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA="}},
        ]}]},
        id="image-base64",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]}]},
        {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]},
        id="image-url",
    ),
    pytest.param(
        {"stop_sequences": ["END", "##"], "temperature": 0.2, "top_p": 0.9, "top_k": 40},
        {"stop": ["END", "##"], "temperature": 0.2, "top_p": 0.9, "top_k": 40},
        id="sampling-and-stop",
    ),
    pytest.param(
        {"tools": [TOOL], "tool_choice": {"type": "auto"}},
        {"tools": [{"type": "function", "function": {
            "name": "get_weather", "description": "Weather", "parameters": {"type": "object"}}}],
         "tool_choice": "auto"},
        id="tools-auto",
    ),
    pytest.param(
        {"tools": [TOOL], "tool_choice": {"type": "any", "disable_parallel_tool_use": True}},
        {"tool_choice": "required", "parallel_tool_calls": False},
        id="tool-choice-any",
    ),
    pytest.param(
        {"tools": [TOOL], "tool_choice": {"type": "tool", "name": "get_weather"}},
        {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        id="tool-choice-named",
    ),
    pytest.param({"tool_choice": {"type": "none"}}, {"tool_choice": "none"}, id="tool-choice-none"),
    pytest.param(
        {"messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "rain"},
                {"type": "text", "text": "and tomorrow?"},
            ]},
        ]},
        {"messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": "Let me look.", "tool_calls": [{
                "id": "toolu_1", "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "rain"},
            {"role": "user", "content": "and tomorrow?"},
        ]},
        id="tool-use-and-result",
    ),
    pytest.param(
        {"messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "is_error": True,
                                          "content": [{"type": "text", "text": "boom"}]}]},
        ]},
        {"messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "t", "content": "Error: boom"},
        ]},
        id="tool-error-result",
    ),
    pytest.param({"metadata": {"user_id": "u-1"}}, {"user": "u-1"}, id="metadata-user"),
]  # fmt: skip


@pytest.mark.parametrize(("given", "expected"), REQUEST_CASES)
def test_request_translation(given: dict[str, Any], expected: dict[str, Any]) -> None:
    request = translate(**given)
    assert request["model"] == "upstream-m"
    for key, value in expected.items():
        assert request[key] == value, key
    # Nothing the request did not ask for is sent.
    sources = {"stop": "stop_sequences", "temperature": "temperature", "top_p": "top_p",
               "top_k": "top_k", "tools": "tools", "tool_choice": "tool_choice"}  # fmt: skip
    for key, source in sources.items():
        if source not in given:
            assert key not in request, key


@pytest.mark.parametrize(
    "given",
    [
        {"messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "file", "file_id": "f"}}]}]},
        {"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
        {"messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "x"}}]}]},
    ],
)  # fmt: skip
def test_untranslatable_requests(given: dict[str, Any]) -> None:
    with pytest.raises(Untranslatable):
        translate(**given)


def reply(message: dict[str, Any], finish: str | None = "stop", **choice: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "choices": [{"index": 0, "message": message, "finish_reason": finish, **choice}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7},
    }


RESPONSE_CASES = [
    pytest.param(reply({"role": "assistant", "content": "Hello"}), "end_turn", None, id="stop"),
    pytest.param(reply({"role": "assistant", "content": "Hel"}, "length"), "max_tokens", None, id="length"),
    pytest.param(
        reply({"role": "assistant", "content": "Hi"}, "stop", stop_reason="END"),
        "stop_sequence",
        "END",
        id="vllm-stop-string",
    ),
    pytest.param(reply({"role": "assistant", "content": "x"}, "content_filter"), "refusal", None, id="filter"),
    pytest.param(
        reply({"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]},
            "tool_calls"),
        "tool_use",
        None,
        id="tool-calls",
    ),
    pytest.param(  # vLLM ends a named tool_choice's call with "stop"
        reply({"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]},
            "stop"),
        "tool_use",
        None,
        id="named-tool-call-ends-stop",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("body", "stop_reason", "stop_sequence"), RESPONSE_CASES)
def test_response_translation(
    body: dict[str, Any], stop_reason: str, stop_sequence: str | None
) -> None:
    p = decode_params(msgspec.json.encode(params(stop_sequences=["END"])))
    message = from_chat_response(body, p, "client-name")
    assert message.model == "client-name"
    assert message.stop_reason == stop_reason and message.stop_sequence == stop_sequence
    assert (message.usage.input_tokens, message.usage.output_tokens) == (11, 7)
    if stop_reason == "tool_use":
        assert message.content == [ToolUseContent(id="call_1", name="f", input={"a": 1})]
    else:
        assert message.content[0].text == body["choices"][0]["message"]["content"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"choices": []},
        {"choices": [{"message": None}]},
        reply({"role": "assistant", "content": None, "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}),
        reply({"role": "assistant", "content": None, "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": '"a string"'}}]}),
    ],
)  # fmt: skip
def test_malformed_replies(body: dict[str, Any]) -> None:
    with pytest.raises(MalformedReply):
        from_chat_response(body, decode_params(msgspec.json.encode(params())), "m")


def test_stream_translation_text_tool_and_stop_string() -> None:
    from batchyard.translate.messages_to_chat import ChatStreamTranslator
    from batchyard.wire.streaming import ContentBlockDelta, ContentBlockStart, MessageDelta

    p = decode_params(msgspec.json.encode(params(stop_sequences=["END"])))
    t = ChatStreamTranslator(p, "client-name")

    def delta(**d: Any) -> dict[str, Any]:
        return {"choices": [{"index": 0, "delta": d, "finish_reason": None}]}

    events = (
        t.feed(delta(role="assistant")) + t.feed(delta(content="Hel")) + t.feed(delta(content="lo"))
    )
    events += t.feed(
        delta(tool_calls=[{"index": 0, "id": "c1", "function": {"name": "f", "arguments": '{"a"'}}])
    )
    events += t.feed(delta(tool_calls=[{"index": 0, "function": {"arguments": ": 1}"}}]))
    events += t.feed(
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "stop_reason": "END"}]}
    )
    events += t.feed({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}})
    events += t.end()
    names = [type(e).__name__ for e in events]
    assert names == [
        "MessageStart", "ContentBlockStart", "ContentBlockDelta", "ContentBlockDelta", "ContentBlockStop",
        "ContentBlockStart", "ContentBlockDelta", "ContentBlockDelta", "ContentBlockStop",
        "MessageDelta", "MessageStop",
    ]  # fmt: skip
    starts = [e for e in events if isinstance(e, ContentBlockStart)]
    assert [s.index for s in starts] == [0, 1]
    assert starts[1].content_block == ToolUseContent(id="c1", name="f", input={})
    deltas = [e.delta for e in events if isinstance(e, ContentBlockDelta)]
    assert [getattr(d, "text", None) or getattr(d, "partial_json", None) for d in deltas] == [
        "Hel", "lo", '{"a"', ": 1}",
    ]  # fmt: skip
    [end] = [e for e in events if isinstance(e, MessageDelta)]
    assert (end.delta.stop_reason, end.delta.stop_sequence) == ("stop_sequence", "END")
    assert (end.usage.input_tokens, end.usage.output_tokens) == (5, 3)


def test_upstream_cache_figures_are_passed_on_never_invented() -> None:
    cached = usage_from_chat(
        {
            "prompt_tokens": 100,
            "completion_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 64},
        }
    )
    assert (cached.input_tokens, cached.cache_read_input_tokens, cached.output_tokens) == (
        36,
        64,
        5,
    )
    silent = usage_from_chat({"prompt_tokens": 100, "completion_tokens": 5})
    assert (silent.input_tokens, silent.cache_read_input_tokens) == (100, None)
    # a Chat Completions answer of ours says the whole prompt, and the cached part when known
    assert chat_usage(cached) == {
        "prompt_tokens": 100,
        "completion_tokens": 5,
        "total_tokens": 105,
        "prompt_tokens_details": {"cached_tokens": 64},
    }
    assert "prompt_tokens_details" not in chat_usage(silent)


SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}
CONTROL_KEYS = (
    "response_format",
    "chat_template_kwargs",
    "thinking_token_budget",
    "reasoning_effort",
)
THINK = {"type": "enabled", "budget_tokens": 2048}

CONTROL_CASES = [
    pytest.param({}, {}, id="none-asked"),
    pytest.param(
        {"output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}},
        {"response_format": {"type": "json_schema",
                             "json_schema": {"name": "output", "schema": SCHEMA, "strict": True}}},
        id="json-schema",
    ),
    pytest.param(
        {"output_config": {"format": {"type": "json_object"}}},
        {"response_format": {"type": "json_object"}},
        id="json-object",
    ),
    pytest.param(
        {"thinking": THINK, "max_tokens": 4096},
        {"chat_template_kwargs": {"enable_thinking": True}, "thinking_token_budget": 2048},
        id="thinking-enabled-budget",
    ),
    pytest.param(
        {"thinking": {"type": "adaptive"}},
        {"chat_template_kwargs": {"enable_thinking": True}},
        id="thinking-adaptive",
    ),
    pytest.param(
        {"thinking": {"type": "disabled"}},
        {"chat_template_kwargs": {"enable_thinking": False}},
        id="thinking-disabled",
    ),
    *[
        pytest.param({"output_config": {"effort": given}}, {"reasoning_effort": sent}, id=f"effort-{given}")
        for given, sent in [("low", "low"), ("medium", "medium"), ("high", "high"),
                            ("xhigh", "high"), ("max", "high")]
    ],
    pytest.param(
        {"thinking": THINK, "max_tokens": 4096,
         "output_config": {"format": {"type": "json_object"}, "effort": "medium"}},
        {"response_format": {"type": "json_object"}, "reasoning_effort": "medium",
         "chat_template_kwargs": {"enable_thinking": True}, "thinking_token_budget": 2048},
        id="all-together",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("given", "expected"), CONTROL_CASES)
def test_structured_output_and_reasoning_controls(
    given: dict[str, Any], expected: dict[str, Any]
) -> None:
    request = translate(**given)
    assert {k: request[k] for k in CONTROL_KEYS if k in request} == expected


def test_strict_tools_stay_strict_and_forced_tools_stay_forced() -> None:
    strict = {"name": "lookup", "input_schema": SCHEMA, "strict": True}
    loose = {**TOOL, "strict": False}
    request = translate(tools=[strict, loose], tool_choice={"type": "any"})
    assert request["tools"] == [
        {"type": "function", "function": {"name": "lookup", "parameters": SCHEMA, "strict": True}},
        {"type": "function", "function": {
            "name": "get_weather", "description": "Weather", "parameters": {"type": "object"}}},
    ]  # fmt: skip
    assert request["tool_choice"] == "required"
    named = translate(tools=[strict], tool_choice={"type": "tool", "name": "lookup"})
    assert named["tool_choice"] == {"type": "function", "function": {"name": "lookup"}}


THOUGHT = ThinkingContent(thinking="Rain is likely.", signature="")

REASONING_CASES = [
    pytest.param(
        reply({"role": "assistant", "reasoning_content": "Rain is likely.", "content": "Rain."}),
        [THOUGHT, TextContent(text="Rain.")], "end_turn", id="reasoning_content",
    ),
    pytest.param(
        reply({"role": "assistant", "reasoning": "Rain is likely.", "content": None, "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}, "tool_calls"),
        [THOUGHT, ToolUseContent(id="c", name="f", input={})], "tool_use", id="reasoning-then-tool",
    ),
    pytest.param(
        reply({"role": "assistant", "reasoning": "Rain is likely.",
               "reasoning_content": "Rain is likely.", "content": "Rain."}),
        [THOUGHT, TextContent(text="Rain.")], "end_turn", id="both-names-one-block",
    ),
    pytest.param(
        reply({"role": "assistant", "reasoning_content": "Rain is likely.", "content": None}, "length"),
        [THOUGHT], "max_tokens", id="cut-off-while-thinking",
    ),
    pytest.param(
        reply({"role": "assistant", "reasoning_content": None, "reasoning": "", "content": "Rain."}),
        [TextContent(text="Rain.")], "end_turn", id="no-reasoning",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("body", "content", "stop_reason"), REASONING_CASES)
def test_reasoning_becomes_a_thinking_block_first(
    body: dict[str, Any], content: list[Any], stop_reason: str
) -> None:
    message = from_chat_response(body, decode_params(msgspec.json.encode(params())), "m")
    assert message.content == content
    assert message.stop_reason == stop_reason


def chunk_of(**delta: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


@pytest.mark.parametrize("key", ["reasoning_content", "reasoning"])
def test_stream_translation_thinking_block(key: str) -> None:
    t = ChatStreamTranslator(decode_params(msgspec.json.encode(params())), "m")
    events = t.feed(chunk_of(role="assistant"))
    events += t.feed(chunk_of(**{key: "Rain is "})) + t.feed(chunk_of(**{key: "likely."}))
    events += t.feed(chunk_of(content="Rain."))
    events += t.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    events += t.end()
    assert [(type(e).__name__, getattr(e, "index", None)) for e in events] == [
        ("MessageStart", None),
        ("ContentBlockStart", 0), ("ContentBlockDelta", 0), ("ContentBlockDelta", 0),
        ("ContentBlockDelta", 0), ("ContentBlockStop", 0),
        ("ContentBlockStart", 1), ("ContentBlockDelta", 1), ("ContentBlockStop", 1),
        ("MessageDelta", None), ("MessageStop", None),
    ]  # fmt: skip
    assert isinstance(events[1], ContentBlockStart)
    assert events[1].content_block == ThinkingContent(thinking="", signature="")
    deltas = [e.delta for e in events if isinstance(e, ContentBlockDelta)]
    assert deltas == [
        ThinkingDelta("Rain is "),
        ThinkingDelta("likely."),
        SignatureDelta(""),
        TextDelta("Rain."),
    ]
    # on the wire, as the SDKs' accumulators read them
    assert json.loads(sse(events[1]).split(b"data: ")[1]) == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "thinking", "thinking": "", "signature": ""},
    }
    assert json.loads(sse(events[2]).split(b"data: ")[1])["delta"] == {
        "type": "thinking_delta",
        "thinking": "Rain is ",
    }
    assert json.loads(sse(events[4]).split(b"data: ")[1])["delta"] == {
        "type": "signature_delta",
        "signature": "",
    }


def test_stream_cut_off_while_thinking_still_closes_the_block() -> None:
    t = ChatStreamTranslator(decode_params(msgspec.json.encode(params())), "m")
    events = t.feed(chunk_of(reasoning="Hmm"))
    events += t.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
    events += t.end()
    names = [type(e).__name__ for e in events]
    assert names == [
        "MessageStart", "ContentBlockStart", "ContentBlockDelta", "ContentBlockDelta",
        "ContentBlockStop", "MessageDelta", "MessageStop",
    ]  # fmt: skip
    assert isinstance(events[3], ContentBlockDelta) and events[3].delta == SignatureDelta("")
    [end] = [e for e in events if isinstance(e, MessageDelta)]
    assert end.delta.stop_reason == "max_tokens"


def test_whole_message_streams_its_thinking_block() -> None:
    """An engine that answers whole messages (`events_from_message`) streams thinking too."""
    body = reply(
        {"role": "assistant", "reasoning_content": "Rain is very likely.", "content": "Rain."}
    )
    message = from_chat_response(body, decode_params(msgspec.json.encode(params())), "m")
    events = events_from_message(message, chunk_words=2)
    starts = [e.content_block for e in events if isinstance(e, ContentBlockStart)]
    assert starts == [ThinkingContent(thinking="", signature=""), TextContent(text="")]
    thinking = [e.delta for e in events if isinstance(e, ContentBlockDelta) and e.index == 0]
    assert thinking == [
        ThinkingDelta("Rain is "),
        ThinkingDelta("very likely."),
        SignatureDelta(""),
    ]
    assert isinstance(events[4], ContentBlockDelta) and isinstance(events[5], ContentBlockStop)


def test_a_streamed_tool_call_that_ends_stop_ends_tool_use() -> None:
    from batchyard.translate.messages_to_chat import ChatStreamTranslator
    from batchyard.wire.streaming import MessageDelta

    t = ChatStreamTranslator(decode_params(msgspec.json.encode(params())), "m")
    call = {"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{}"}}
    events = t.feed({"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]})
    events += t.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    [end] = [e for e in events + t.end() if isinstance(e, MessageDelta)]
    assert end.delta.stop_reason == "tool_use"
