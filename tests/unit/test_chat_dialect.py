"""Chat Completions requests as Messages requests, and Messages answers as Chat Completions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from batchyard.translate.chat_dialect import (
    ChatRequestError,
    ChunkTranslator,
    chat_completion,
    messages_request,
)
from batchyard.wire.messages import (
    Message,
    TextContent,
    ToolResultBlock,
    ToolUseBlock,
    ToolUseContent,
    Usage,
)
from batchyard.wire.streaming import events_from_message


def blocks(content: str | list[Any]) -> list[Any]:
    assert isinstance(content, list)
    return content


def test_system_turns_tools_and_sampling() -> None:
    params = messages_request(
        {
            "model": "m",
            "max_tokens": 100,
            "temperature": 1.7,
            "top_p": 0.5,
            "stop": "END",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "No emoji."}]},
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                {"role": "user", "content": [{"type": "text", "text": "And tomorrow?"}]},
            ],
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "weather", "parameters": {"type": "object"}},
                }
            ],
            "tool_choice": "required",
        }
    )
    assert params.system == "Be brief.\n\nNo emoji."
    assert params.temperature == 1.0 and params.top_p == 0.5 and params.stop_sequences == ["END"]
    assert [m.role for m in params.messages] == ["user", "assistant", "user"]
    [call] = blocks(params.messages[1].content)
    assert isinstance(call, ToolUseBlock) and call.input == {"city": "Paris"}
    result, follow_up = blocks(params.messages[2].content)  # merged: one user turn
    assert isinstance(result, ToolResultBlock) and result.tool_use_id == "call_1"
    assert follow_up.text == "And tomorrow?"
    assert params.tools == [
        {"name": "weather", "description": "", "input_schema": {"type": "object"}}
    ]
    assert params.tool_choice == {"type": "any"}


def test_images_and_defaults() -> None:
    params = messages_request(
        {
            "model": "m",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
                    ],
                }
            ],
        }
    )
    assert params.max_tokens == 4096
    first, second = blocks(params.messages[0].content)
    assert first.source.media_type == "image/png" and first.source.data == "AAAA"
    assert second.source.url == "https://x.test/a.png"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}, "messages"),
        ({"model": "m", "n": 3, "messages": [{"role": "user", "content": "x"}]}, "n"),
        (
            {
                "model": "m",
                "tool_choice": 5,
                "tools": [{"function": {"name": "f"}}],
                "messages": [{"role": "user", "content": "x"}],
            },
            "tool_choice",
        ),
    ],
)
def test_bad_requests_name_their_param(body: dict[str, object], param: str) -> None:
    with pytest.raises(ChatRequestError) as err:
        messages_request(body)
    assert err.value.param == param


def message(stop: str = "end_turn") -> Message:
    return Message(
        id="msg_abc",
        model="m",
        content=[
            TextContent("Calling."),
            ToolUseContent(id="toolu_1", name="weather", input={"city": "Oslo"}),
        ],
        stop_reason=stop,  # type: ignore[arg-type]
        stop_sequence=None,
        usage=Usage(input_tokens=7, output_tokens=5),
    )


def test_message_as_chat_completion() -> None:
    out = chat_completion(message("tool_use"), "gpt-x")
    assert out["id"] == "chatcmpl-abc" and out["model"] == "gpt-x"
    [choice] = out["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Calling."
    [call] = choice["message"]["tool_calls"]
    assert call["function"] == {"name": "weather", "arguments": '{"city": "Oslo"}'}
    assert out["usage"] == {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}


def test_stream_events_as_chunks() -> None:
    translator = ChunkTranslator("gpt-x", include_usage=True)
    chunks = [c for e in events_from_message(message("tool_use")) for c in translator.feed(e)]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "Calling."
    calls = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if c["choices"] and "tool_calls" in c["choices"][0]["delta"]
    ]
    assert calls[0]["function"]["name"] == "weather"
    assert json.loads("".join(c["function"]["arguments"] for c in calls)) == {"city": "Oslo"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 12
