"""`/v1/chat/completions` and `/v1/models` with the official `openai` SDK."""

from __future__ import annotations

import anthropic
import openai
import pytest

from tests.conftest import ServerFactory, client_for, openai_client_for
from tests.serverproc import Server


@pytest.fixture
def oai(server: Server) -> openai.OpenAI:
    return openai_client_for(server)


def test_same_completion_through_both_dialects(
    oai: openai.OpenAI, client: anthropic.Anthropic
) -> None:
    chat = oai.chat.completions.create(
        model="claude-test",
        max_tokens=50,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Tell me about the sea and the sky"},
        ],
    )
    message = client.messages.create(
        model="claude-test",
        max_tokens=50,
        system="Be brief.",
        messages=[{"role": "user", "content": "Tell me about the sea and the sky"}],
    )
    assert chat.object == "chat.completion" and chat.model == "claude-test"
    [choice] = chat.choices
    assert choice.message.role == "assistant" and choice.finish_reason == "stop"
    assert choice.message.content == message.content[0].text  # type: ignore[union-attr]
    assert chat.usage is not None
    assert chat.usage.prompt_tokens == message.usage.input_tokens
    assert chat.usage.completion_tokens == message.usage.output_tokens
    assert chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens


def test_streaming_chunks_add_up_to_the_completion(oai: openai.OpenAI) -> None:
    request = {
        "model": "claude-test",
        "max_tokens": 40,
        "messages": [{"role": "user", "content": "Stream me something about rivers"}],
    }
    whole = oai.chat.completions.create(**request)  # type: ignore[call-overload]
    chunks = list(
        oai.chat.completions.create(**request, stream=True, stream_options={"include_usage": True})  # type: ignore[call-overload]
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_max_tokens_and_stop(oai: openai.OpenAI) -> None:
    short = oai.chat.completions.create(
        model="claude-test",
        max_completion_tokens=3,
        messages=[{"role": "user", "content": "one two three four five six"}],
    )
    assert short.choices[0].finish_reason == "length"
    assert short.usage is not None and short.usage.completion_tokens == 3


def test_errors_in_the_openai_shape(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        oai.chat.completions.create(model="claude-test", messages=[])
    assert bad.value.param == "messages"
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(openai.BadRequestError, match="n: only 1"):
        oai.chat.completions.create(
            model="claude-test", n=2, messages=[{"role": "user", "content": "hi"}]
        )
    # what is not here: a 404 in OpenAI's shape, not Anthropic's
    with pytest.raises(openai.NotFoundError) as missing:
        oai.moderations.create(input="hi")
    sent = missing.value.response.json()
    assert sent.keys() == {"error"} and sent["error"]["type"] == "not_found_error", sent
    assert sent["error"].keys() == {"message", "type", "param", "code"}


def test_models_parse_in_both_sdks(start_server: ServerFactory) -> None:
    server = start_server("--model", "named-a", "--model", "named-b")
    oai = openai_client_for(server)
    ids = [m.id for m in oai.models.list()]
    assert ids == ["named-a", "named-b"]
    assert all(m.object == "model" and m.owned_by == "batchyard" for m in oai.models.list())
    model = oai.models.retrieve(ids[0])
    assert model.id == ids[0] and model.created > 0
    anthropic_ids = [m.id for m in client_for(server).models.list()]
    assert anthropic_ids == ids
