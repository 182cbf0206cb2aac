"""Legacy Text Completions: the prompt's turns, the request and answers as Messages."""

from __future__ import annotations

import msgspec
import pytest

from batchyard.translate.completions import (
    BAD_END,
    BAD_START,
    CompletionEvents,
    completion,
    messages_request,
    prompt_turns,
)
from batchyard.wire.completions import Completion, completion_sse, decode_completion_params
from batchyard.wire.errors import InvalidParams
from batchyard.wire.messages import Message, MessageParam, StopReason, TextContent, Usage
from batchyard.wire.streaming import events_from_message


def turns(prompt: str) -> tuple[str | None, list[tuple[str, object]]]:
    system, messages = prompt_turns(prompt)
    return system, [(m.role, m.content) for m in messages]


def test_turns_become_messages_and_the_empty_last_turn_is_the_answer_slot() -> None:
    prompt = "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: How are you?\n\nAssistant:"
    assert turns(prompt) == (
        None,
        [("user", "Hi there"), ("assistant", "Hello!"), ("user", "How are you?")],
    )


def test_text_before_the_first_turn_is_the_system_prompt() -> None:
    assert turns("Be brief.\n\nHuman: Hi\n\nAssistant:") == ("Be brief.", [("user", "Hi")])


def test_a_non_empty_last_turn_is_a_prefill() -> None:
    assert turns("\n\nHuman: List three\n\nAssistant: 1. ") == (
        None,
        [("user", "List three"), ("assistant", "1.")],
    )


def test_consecutive_turns_of_one_speaker_are_one_message() -> None:
    assert turns("\n\nHuman: a\n\nHuman: b\n\nAssistant:")[1] == [("user", "a\n\nb")]


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("Hello", BAD_START),
        ("Human: Hi\n\nAssistant:", BAD_START),
        ("\n\nAssistant: Hi\n\nHuman: x\n\nAssistant:", BAD_START),
        ("\n\nHuman: Hi", BAD_END),
        ("\n\nHuman: Hi\n\nAssistant: ok\n\nHuman: more", BAD_END),
    ],
)
def test_prompts_the_hosted_api_refuses(prompt: str, message: str) -> None:
    with pytest.raises(InvalidParams) as caught:
        prompt_turns(prompt)
    assert str(caught.value) == message


def test_the_messages_are_worded_as_the_hosted_api_words_them() -> None:
    assert BAD_START == r'prompt must start with "\n\nHuman:" turn after an optional system prompt'
    assert BAD_END == r'prompt must end with "\n\nAssistant:" turn'


def test_the_request_as_messages() -> None:
    params = decode_completion_params(
        b'{"model": "claude-2.1", "prompt": "Sys\\n\\nHuman: Hi\\n\\nAssistant:",'
        b' "max_tokens_to_sample": 7, "stop_sequences": ["X"], "temperature": 0.5,'
        b' "top_p": 0.9, "top_k": 3, "metadata": {"user_id": "u"}, "stream": false}'
    )
    request = messages_request(params)
    assert request.model == "claude-2.1" and request.max_tokens == 7
    assert request.system == "Sys"
    assert request.messages == [MessageParam(role="user", content="Hi")]
    assert request.stop_sequences == ["X"]
    assert (request.temperature, request.top_p, request.top_k) == (0.5, 0.9, 3)
    assert request.metadata == {"user_id": "u"} and request.stream is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"model": "m", "prompt": "p", "max_tokens_to_sample": 1, "messages": []}',
         "messages: Extra inputs are not permitted"),
        (b'{"model": "m", "prompt": "p"}', "Object missing required field `max_tokens_to_sample`"),
        (b'{"model": "m", "prompt": "p", "max_tokens_to_sample": 0}',
         "max_tokens_to_sample: Expected `int` >= 1"),
    ],
)  # fmt: skip
def test_fields_are_checked(body: bytes, message: str) -> None:
    with pytest.raises(InvalidParams) as caught:
        decode_completion_params(body)
    assert str(caught.value) == message


def _message(text: str, stop_reason: StopReason, stop_sequence: str | None = None) -> Message:
    return Message(
        id="msg_1",
        model="claude-test",
        content=[TextContent(text)],
        stop_reason=stop_reason,
        stop_sequence=stop_sequence,
        usage=Usage(input_tokens=3, output_tokens=5),
    )


@pytest.mark.parametrize(
    ("reason", "sequence", "expected"),
    [
        ("end_turn", None, ("stop_sequence", None)),
        ("stop_sequence", "END", ("stop_sequence", "END")),
        ("max_tokens", None, ("max_tokens", None)),
    ],
)
def test_the_answer_as_a_completion(
    reason: StopReason, sequence: str | None, expected: tuple[str, str | None]
) -> None:
    answer = completion(_message("Hello there", reason, sequence), "claude-2.1")
    assert answer.id.startswith("compl_") and answer.type == "completion"
    assert (answer.completion, answer.model) == ("Hello there", "claude-2.1")
    assert (answer.stop_reason, answer.stop) == expected
    assert msgspec.json.decode(msgspec.json.encode(answer)).keys() == {
        "id", "type", "completion", "stop_reason", "stop", "model"
    }  # fmt: skip


def test_a_stream_is_pieces_of_text_then_the_stop() -> None:
    message = _message("one two three four five six", "stop_sequence", "END")
    events = CompletionEvents("claude-2.1")
    pieces = [piece for event in events_from_message(message, 2) for piece in events.feed(event)]
    assert [p.completion for p in pieces] == ["one two ", "three four ", "five six", ""]
    assert [p.stop_reason for p in pieces] == [None, None, None, "stop_sequence"]
    assert pieces[-1].stop == "END"
    assert {p.id for p in pieces} == {events.id}


def test_a_stream_event_on_the_wire() -> None:
    piece = Completion("compl_1", "Hi", None, "m")
    event, data = completion_sse(piece).decode().removesuffix("\n\n").split("\n")
    assert event == "event: completion"
    assert msgspec.json.decode(data.removeprefix("data: ")) == {
        "id": "compl_1", "completion": "Hi", "stop_reason": None, "model": "m",
        "stop": None, "type": "completion",
    }  # fmt: skip
