"""Chat Completions requests as Messages requests, and Messages answers as Chat Completions."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.chat.completion_create_params import CompletionCreateParamsBase

from batchyard.translate.chat_answers import ChunkTranslator, chat_completion
from batchyard.translate.chat_to_messages import (
    ACCEPTED,
    MAPPED,
    REFUSED,
    ChatRequestError,
    messages_request,
)
from batchyard.wire.messages import (
    JsonObjectFormat,
    JsonSchemaFormat,
    Message,
    TextContent,
    ThinkingContent,
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
            "temperature": 0.7,
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
    assert params.temperature == 0.7 and params.top_p == 0.5 and params.stop_sequences == ["END"]
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


# --- response_format and the other request fields ---------------------------------

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "x"}], **fields}


def json_schema(schema: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "person", "schema": schema, **extra}}


def test_response_format_json_schema_becomes_output_config_format() -> None:
    params = messages_request(chat(response_format=json_schema(PERSON, strict=True)))
    assert params.output_config is not None
    fmt = params.output_config.format
    assert isinstance(fmt, JsonSchemaFormat) and fmt.schema == PERSON
    assert params.output_config.effort is None


def test_response_format_json_object_and_text() -> None:
    params = messages_request(chat(response_format={"type": "json_object"}))
    assert params.output_config is not None
    assert isinstance(params.output_config.format, JsonObjectFormat)
    assert messages_request(chat(response_format={"type": "text"})).output_config is None
    assert messages_request(chat()).output_config is None


@pytest.mark.parametrize(
    ("response_format", "says"),
    [
        ("json", "response_format: must be an object"),
        ({"type": "grammar"}, "response_format.type: must be 'text', 'json_object'"),
        ({"type": ["json_schema"]}, "response_format.type: must be"),
        ({"type": "json_schema"}, "response_format.json_schema: required"),
        ({"type": "json_schema", "json_schema": {"name": "x"}}, ".schema: required"),
        (json_schema(["not", "an", "object"]), ".schema: must be a JSON Schema object"),
        (json_schema(PERSON) | {"json_schema": {"schema": PERSON}}, ".name: required"),
        (json_schema(PERSON) | {"json_schema": {"name": "a b", "schema": PERSON}}, ".name:"),
        (json_schema(PERSON, strict="yes"), ".json_schema.strict: must be a boolean"),
        (json_schema(PERSON, grammar="x"), ".json_schema.grammar: unknown parameter"),
        ({"type": "json_object", "schema": PERSON}, "response_format.schema: unknown"),
    ],
)
def test_unsupported_response_formats_are_refused(response_format: Any, says: str) -> None:
    with pytest.raises(ChatRequestError) as err:
        messages_request(chat(response_format=response_format))
    assert err.value.param == "response_format"
    assert says in str(err.value)


def test_a_schema_the_decoder_refuses_is_reported_in_chat_terms() -> None:
    schema = PERSON | {"properties": {"name": {"type": "string"}, "age": {"minimum": 0}}}
    with pytest.raises(ChatRequestError) as err:
        messages_request(chat(response_format=json_schema(schema)))
    assert err.value.param == "response_format"
    assert str(err.value).startswith("response_format.json_schema.schema.properties.age")
    assert "output_config" not in str(err.value)


def test_a_strict_function_keeps_its_schema_and_its_errors_name_it() -> None:
    function = {"name": "f", "strict": True, "parameters": PERSON}
    params = messages_request(chat(tools=[{"type": "function", "function": function}]))
    assert params.tools == [
        {"name": "f", "description": "", "input_schema": PERSON, "strict": True}
    ]
    lengths = {"name": {"type": "string", "maxLength": 3}, "age": {"type": "integer"}}
    loose = function | {"parameters": PERSON | {"properties": lengths}}
    with pytest.raises(ChatRequestError) as err:
        messages_request(chat(tools=[{"type": "function", "function": loose}]))
    assert err.value.param == "tools"
    assert str(err.value).startswith("tools.0.function.parameters.properties.name.maxLength")


@pytest.mark.parametrize(
    ("effort", "expected"),
    [("none", "low"), ("minimal", "low"), ("low", "low"), ("high", "high"), ("max", "max")],
)
def test_reasoning_effort_becomes_output_config_effort(effort: str, expected: str) -> None:
    params = messages_request(chat(reasoning_effort=effort, response_format={"type": "text"}))
    assert params.output_config is not None
    assert params.output_config.effort == expected and params.output_config.format is None


WEATHER = [{"type": "function", "function": {"name": "weather"}}]


@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [
        (None, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", {"type": "any", "disable_parallel_tool_use": True}),
        (
            {"type": "function", "function": {"name": "weather"}},
            {"type": "tool", "name": "weather", "disable_parallel_tool_use": True},
        ),
        ("none", {"type": "none"}),
    ],
)
def test_parallel_tool_calls_false_disables_parallel_tool_use(
    tool_choice: Any, expected: dict[str, Any]
) -> None:
    fields = {"tools": WEATHER, "parallel_tool_calls": False}
    if tool_choice is not None:
        fields["tool_choice"] = tool_choice
    assert messages_request(chat(**fields)).tool_choice == expected
    assert messages_request(chat(tools=WEATHER, parallel_tool_calls=True)).tool_choice is None


def test_top_k_is_carried() -> None:
    assert messages_request(chat(top_k=40)).top_k == 40


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("frequency_penalty", 0.5),
        ("presence_penalty", -1),
        ("logit_bias", {"50256": -100}),
        ("logprobs", True),
        ("top_logprobs", 3),
        ("verbosity", "low"),
        ("modalities", ["text", "audio"]),
        ("audio", {"voice": "alloy", "format": "wav"}),
        ("functions", [{"name": "f"}]),
        ("function_call", "auto"),
        ("web_search_options", {}),
        ("moderation", {"mode": "block"}),
        ("min_p", 0.1),  # not a Chat Completions field at all
        ("reasoning_effort", "turbo"),
        ("parallel_tool_calls", "no"),
    ],
)
def test_fields_that_would_change_the_answer_are_refused(field: str, value: Any) -> None:
    with pytest.raises(ChatRequestError) as err:
        messages_request(chat(tools=WEATHER, **{field: value}))
    assert err.value.param == field
    assert str(err.value).startswith(field) or field in str(err.value)


def test_harmless_fields_and_neutral_values_are_accepted() -> None:
    params = messages_request(
        chat(
            user="u-1",
            safety_identifier="s-1",
            metadata={"project": "p"},
            store=True,
            stream=False,
            stream_options={"include_usage": True},
            service_tier="auto",
            prompt_cache_key="k",
            prediction={"type": "content", "content": "x"},
            seed=7,
            n=1,
            frequency_penalty=0,
            presence_penalty=0.0,
            logit_bias={},
            logprobs=False,
            verbosity="medium",
            modalities=["text"],
        )
    )
    assert params.model == "m"


def test_every_sdk_field_has_a_place_in_the_table() -> None:
    """A field a newer `openai` SDK sends must be mapped, accepted or refused on purpose."""
    sdk_fields = set(CompletionCreateParamsBase.__annotations__) | {"stream"}
    assert sdk_fields <= MAPPED | ACCEPTED | set(REFUSED)
    assert not (MAPPED & ACCEPTED) and not (MAPPED | ACCEPTED) & set(REFUSED)


def test_thinking_goes_out_as_reasoning_content_whole_and_streamed() -> None:
    message = Message(
        id="msg_1",
        model="m",
        content=[ThinkingContent(thinking="let me see", signature=""), TextContent(text="4")],
        stop_reason="end_turn",
        stop_sequence=None,
        usage=Usage(input_tokens=3, output_tokens=5),
    )
    reply = chat_completion(message, "m")["choices"][0]["message"]
    assert reply["reasoning_content"] == "let me see" and reply["content"] == "4"
    translator = ChunkTranslator("m", include_usage=False)
    deltas = [
        c["choices"][0]["delta"]
        for e in events_from_message(message)
        for c in translator.feed(e)
        if c["choices"]
    ]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == "let me see"
    assert "".join(d.get("content", "") for d in deltas) == "4"


def test_a_temperature_above_the_messages_range_is_refused_not_capped() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 1.7}
    with pytest.raises(ChatRequestError) as exc:
        messages_request(body)
    assert exc.value.param == "temperature"
