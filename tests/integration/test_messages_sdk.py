"""Interactive endpoints with the official SDK: messages (plain and streamed), count_tokens, models."""

from __future__ import annotations

import anthropic
import httpx
import pytest
from anthropic.types import MessageParam

from tests.conftest import ServerFactory, client_for
from tests.serverproc import ADMIN_KEY, HEADERS, Server

MSG: list[MessageParam] = [{"role": "user", "content": "Tell me about the sea and the sky"}]


def test_create_message(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model="claude-test",
        max_tokens=100,
        system="Be brief.",
        messages=MSG,
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.model == "claude-test"
    assert message.id.startswith("msg_")
    assert message.content[0].type == "text"
    assert message.content[0].text.endswith("to: Tell me about the sea and the sky")
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 10  # "Be brief." + 8 words
    assert message.usage.service_tier == "standard"
    assert message._request_id and message._request_id.startswith("req_")


def test_stream_matches_the_plain_call(client: anthropic.Anthropic) -> None:
    plain = client.messages.create(model="claude-test", max_tokens=100, messages=MSG)
    with client.messages.stream(model="claude-test", max_tokens=100, messages=MSG) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(texts) > 1  # it did arrive in pieces
    assert "".join(texts) == plain.content[0].text  # type: ignore[union-attr]
    assert [(b.type, b.text) for b in final.content] == [(b.type, b.text) for b in plain.content]  # type: ignore[union-attr]
    assert final.stop_reason == plain.stop_reason
    assert final.usage.input_tokens == plain.usage.input_tokens
    assert final.usage.output_tokens == plain.usage.output_tokens


def test_stream_max_tokens_and_stop_sequence(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model="claude-test", max_tokens=3, messages=MSG) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "max_tokens" and final.usage.output_tokens == 3
    message = client.messages.create(
        model="claude-test",
        max_tokens=50,
        messages=MSG,
        stop_sequences=["about"],
    )
    assert message.stop_reason == "stop_sequence" and message.stop_sequence == "about"
    assert "about" not in message.content[0].text  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_async_stream(server: Server) -> None:
    client = anthropic.AsyncAnthropic(
        base_url=server.base_url, api_key=ADMIN_KEY, _strict_response_validation=True, max_retries=0
    )
    async with client.messages.stream(model="claude-test", max_tokens=100, messages=MSG) as stream:
        text = "".join([t async for t in stream.text_stream])
    assert text.endswith("the sea and the sky")
    await client.close()


def test_raw_sse_event_order(server: Server) -> None:
    with httpx.stream(
        "POST",
        f"{server.base_url}/v1/messages",
        headers=HEADERS,
        json={"model": "claude-test", "max_tokens": 20, "messages": MSG, "stream": True},
    ) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        names = [line[7:] for line in r.iter_lines() if line.startswith("event: ")]
    assert names[0] == "message_start"
    assert names[-2:] == ["message_delta", "message_stop"]
    assert names[2] == "content_block_start" and names[-3] == "content_block_stop"
    assert set(names[3:-3]) == {"content_block_delta"}


def test_count_tokens(client: anthropic.Anthropic) -> None:
    counted = client.messages.count_tokens(model="claude-test", system="Be brief.", messages=MSG)
    assert counted.input_tokens == 10


def test_unknown_model_and_bad_params(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as exc:
        client.messages.create(model="gpt-4o", max_tokens=10, messages=MSG)
    assert exc.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with (
        pytest.raises(anthropic.NotFoundError),
        client.messages.stream(model="gpt-4o", max_tokens=10, messages=MSG) as s,
    ):
        s.get_final_message()
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.messages.create(model="claude-test", max_tokens=0, messages=MSG)
    assert "max_tokens" in bad.value.message
    with pytest.raises(anthropic.BadRequestError):
        client.messages.count_tokens(model="claude-test", messages=[])


def test_models_list_and_retrieve(start_server: ServerFactory) -> None:
    server = start_server(
        "--model", "alpha", "--model", "beta=upstream-beta", "--model", "gamma", "--model", "fake-*"
    )
    client = client_for(server)
    page = client.models.list(limit=2)
    assert [m.id for m in page.data] == ["alpha", "beta"] and page.has_more
    assert [m.id for m in client.models.list(limit=2)] == ["alpha", "beta", "gamma"]
    assert [m.id for m in client.models.list(after_id="alpha").data] == ["beta", "gamma"]
    assert [m.id for m in client.models.list(before_id="gamma", limit=1).data] == ["beta"]
    beta = client.models.retrieve("beta")
    assert beta.type == "model" and beta.id == "beta" and beta.display_name == "beta"
    assert client.models.retrieve("fake-anything").id == "fake-anything"
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("nope")
    # The alias is served under its own name while the engine is asked for the upstream name.
    message = client.messages.create(model="beta", max_tokens=10, messages=MSG)
    assert message.model == "beta"
