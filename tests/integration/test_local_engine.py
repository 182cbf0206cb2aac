"""The embedded model (SmolLM2 on llama.cpp) end to end through the official SDK."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from tests.conftest import client_for, openai_client_for
from tests.databases import new_database
from tests.integration.test_batches_sdk import wait_ended
from tests.serverproc import Server

MODEL = "smollm2-135m-instruct"
FRANCE = "What is the capital of France?"


def local_server(d: Path) -> Server:
    """batchyard on the embedded model (8 sequences of 512 tokens), its data in `d`."""
    return Server(
        new_database(d, "db"),
        d / "server.log",
        [
            "--engine",
            "local",
            "--capacity",
            "8",
            "--context-tokens",
            "512",
            "--poll-interval",
            "0.1",
        ],
    )


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = local_server(tmp_path_factory.mktemp("local"))
    yield server
    server.stop()


def ask(text: str, max_tokens: int = 24, **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": max_tokens,
        "temperature": 0,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def call(text: str, max_tokens: int = 24) -> dict[str, Any]:
    """SDK keyword arguments (this SDK has no `temperature` keyword: it goes in extra_body)."""
    return {
        "model": MODEL,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": text}],
        "extra_body": {"temperature": 0},
    }


def batch_texts(client: anthropic.Anthropic, requests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    batch = client.messages.batches.create(
        requests=[{"custom_id": k, "params": v} for k, v in requests.items()]  # type: ignore[typeddict-item]
    )
    ended = wait_ended(client, batch.id, timeout=120)
    assert ended.request_counts.processing == 0
    return {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}


def test_batch_on_the_embedded_model_is_deterministic(local: Server) -> None:
    client = client_for(local)
    requests = {
        "france": ask(FRANCE),
        "colour": ask("Name one colour of the rainbow."),
        "count": ask("Count from one to five."),
        "short": ask("Tell me a story.", max_tokens=3),
        "stop": ask(FRANCE, stop_sequences=["Paris"]),
    }
    first = batch_texts(client, requests)
    assert all(r.type == "succeeded" for r in first.values()), first
    france = first["france"].message
    assert "Paris" in france.content[0].text
    assert france.stop_reason == "end_turn" and france.model == MODEL
    assert 0 < france.usage.output_tokens <= 24
    counted = client.messages.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": FRANCE}]
    )
    assert france.usage.input_tokens == counted.input_tokens > 5

    short = first["short"].message
    assert short.stop_reason == "max_tokens" and short.usage.output_tokens == 3
    stopped = first["stop"].message
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == "Paris"
    assert "Paris" not in stopped.content[0].text

    # Temperature 0 gives the same text again, whatever else shares the batch.
    second = batch_texts(client, {"france": ask(FRANCE), "count": ask("Count from one to five.")})
    assert second["france"].message.content == france.content
    assert second["count"].message.content == first["count"].message.content


def test_stream_matches_plain_call(local: Server) -> None:
    client = client_for(local)
    plain = client.messages.create(**call("Name three fruits.", max_tokens=20))
    with client.messages.stream(**call("Name three fruits.", max_tokens=20)) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 3  # token by token
    assert "".join(pieces) == plain.content[0].text
    assert final.usage.output_tokens == plain.usage.output_tokens
    assert final.stop_reason == plain.stop_reason


def test_prompt_longer_than_the_context_is_a_clear_error(local: Server) -> None:
    client = client_for(local)
    long = "word " * 2000
    with pytest.raises(anthropic.BadRequestError) as exc:
        client.messages.create(**call(long))
    assert "context window" in exc.value.message
    results = batch_texts(client, {"long": ask(long), "ok": ask(FRANCE, max_tokens=4)})
    assert results["long"].type == "errored"
    assert results["long"].error.error.type == "invalid_request_error"
    assert results["ok"].type == "succeeded"


def test_models_and_unsupported_blocks(local: Server) -> None:
    client = client_for(local)
    assert [m.id for m in client.models.list()] == [MODEL]
    with pytest.raises(anthropic.BadRequestError) as exc:
        client.messages.create(
            model=MODEL,
            max_tokens=5,
            messages=[{"role": "user", "content": [
                {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]}],
        )  # fmt: skip
    assert "text only" in exc.value.message


def test_same_answer_alone_or_in_a_full_batch(local: Server) -> None:
    """Temperature 0 gives one answer whatever shares the decode (these prompts are ones
    that llama.cpp's llamafile kernels answered differently when a lone sequence's
    one-row products took another kernel; the runtime now never makes such a call)."""
    client = client_for(local)
    topics = ["the sea", "a cat", "bread", "the moon", "trains", "winter", "music", "a garden"]
    prompts = {f"p{i}": f"Write one sentence about {topics[i % 8]} (#{i})." for i in range(12, 24)}
    together = batch_texts(client, {k: ask(v, max_tokens=32) for k, v in prompts.items()})
    for key, prompt in prompts.items():
        alone = client.messages.create(**call(prompt, max_tokens=32))
        assert together[key].message.content[0].text == alone.content[0].text, key


LONG_SYSTEM = "You sort customer messages into one word labels. " + " ".join(
    f"Example {i}: 'my parcel number {i} came late' is labelled delivery." for i in range(16)
)


def whole_prompt(usage: Any) -> int:
    return int(
        usage.input_tokens
        + (usage.cache_read_input_tokens or 0)
        + (usage.cache_creation_input_tokens or 0)
    )


def test_a_shared_system_prompt_is_read_from_the_cache(local: Server) -> None:
    """Usage adds up to the prompt on every path, and a hit answers as the miss did."""
    client = client_for(local)
    item = "Where is my order?"
    counted = client.messages.count_tokens(
        model=MODEL, system=LONG_SYSTEM, messages=[{"role": "user", "content": item}]
    ).input_tokens
    kwargs = {**call(item, max_tokens=8), "system": LONG_SYSTEM}
    first = client.messages.create(**kwargs)
    second = client.messages.create(**kwargs)
    assert second.content == first.content
    assert whole_prompt(first.usage) == whole_prompt(second.usage) == counted
    # all but the last two tokens (a prefill is never a single token)
    assert second.usage.cache_read_input_tokens == counted - 2
    assert second.usage.input_tokens == 2 and second.usage.cache_creation_input_tokens == 0

    with client.messages.stream(**kwargs) as stream:
        streamed = stream.get_final_message()
    assert streamed.content[0].text == first.content[0].text  # type: ignore[union-attr]
    assert whole_prompt(streamed.usage) == counted
    assert (streamed.usage.cache_read_input_tokens or 0) > counted // 2

    items = {f"i{k}": f"Item {k}: the parcel never came." for k in range(4)}
    results = batch_texts(
        client, {k: {**ask(v, max_tokens=8), "system": LONG_SYSTEM} for k, v in items.items()}
    )
    for key, result in results.items():
        assert result.type == "succeeded", result
        usage = result.message.usage
        n = client.messages.count_tokens(
            model=MODEL, system=LONG_SYSTEM, messages=[{"role": "user", "content": items[key]}]
        ).input_tokens
        assert whole_prompt(usage) == n
        assert (usage.cache_read_input_tokens or 0) > n // 2  # the system prompt at least

    chat = openai_client_for(local).chat.completions.create(
        model=MODEL,
        max_tokens=8,
        temperature=0,
        messages=[{"role": "system", "content": LONG_SYSTEM}, {"role": "user", "content": item}],
    )
    assert chat.usage is not None and chat.usage.prompt_tokens == counted
    assert chat.usage.prompt_tokens_details is not None
    assert chat.usage.prompt_tokens_details.cached_tokens == counted - 2
    assert chat.choices[0].message.content == first.content[0].text


def test_cache_control_breakpoints_write_then_read(local: Server) -> None:
    client = client_for(local)
    system = [
        {
            "type": "text",
            "text": LONG_SYSTEM.replace("labels", "tags"),
            "cache_control": {"type": "ephemeral", "ttl": "1h"},
        }
    ]
    kwargs = {**call("The box was crushed.", max_tokens=4), "system": system}
    first = client.messages.create(**kwargs)
    written = first.usage.cache_creation_input_tokens or 0
    assert written > 200  # the system block, kept at its breakpoint
    assert first.usage.cache_creation is not None
    assert first.usage.cache_creation.ephemeral_1h_input_tokens == written
    other = {**kwargs, "messages": [{"role": "user", "content": "I was charged twice."}]}
    second = client.messages.create(**other)
    assert (second.usage.cache_read_input_tokens or 0) >= written
    assert second.usage.cache_creation_input_tokens == 0

    # top level (automatic caching): the whole prompt is kept at its end
    auto = {
        **call("Sort this: the zip broke on day one.", max_tokens=2),
        "extra_body": {"temperature": 0, "cache_control": {"type": "ephemeral"}},
    }
    whole = client.messages.create(**auto)
    assert (whole.usage.cache_creation_input_tokens or 0) > 0
    assert whole.usage.cache_creation is not None
    assert (
        whole.usage.cache_creation.ephemeral_5m_input_tokens
        == whole.usage.cache_creation_input_tokens
    )
    counted = client.messages.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": "Sort this: the zip broke on day one."}]
    ).input_tokens
    assert whole_prompt(whole.usage) == counted
    again = client.messages.create(**auto)
    assert again.content == whole.content
    assert (again.usage.cache_read_input_tokens or 0) == whole_prompt(whole.usage) - 2

    bad = [{**system[0], "cache_control": {"type": "ephemeral", "ttl": "10m"}}]
    with pytest.raises(anthropic.BadRequestError) as exc:
        client.messages.create(**{**kwargs, "system": bad})
    assert exc.value.status_code == 400
    assert "system.0.cache_control.ttl" in exc.value.message
    five = [
        {"type": "text", "text": f"part {k}", "cache_control": {"type": "ephemeral"}}
        for k in range(5)
    ]
    with pytest.raises(anthropic.BadRequestError) as exc:
        client.messages.create(**{**kwargs, "system": five})
    assert "maximum of 4 blocks with cache_control" in exc.value.message


def test_usage_report_counts_the_cache(local: Server) -> None:
    import httpx

    from tests.serverproc import HEADERS

    client = client_for(local)
    system = [
        {"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    ]
    for item in ("The lid is loose.", "The lid is missing."):
        client.messages.create(**{**call(item, max_tokens=2), "system": system})
    start = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(time.time() - 86400))
    report = httpx.get(
        f"{local.base_url}/v1/organizations/usage_report/messages",
        params={"starting_at": start, "bucket_width": "1d", "limit": 2},
        headers=HEADERS,
    ).json()
    results = [r for bucket in report["data"] for r in bucket["results"]]
    assert sum(r["cache_read_input_tokens"] for r in results) > 0
    assert sum(r["cache_creation"]["ephemeral_1h_input_tokens"] for r in results) > 0
