"""The embedded model (SmolLM2 on llama.cpp) end to end through the official SDK."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from tests.conftest import client_for
from tests.databases import new_database
from tests.integration.test_batches_sdk import wait_ended
from tests.serverproc import Server

MODEL = "smollm2-135m-instruct"
FRANCE = "What is the capital of France?"


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    d: Path = tmp_path_factory.mktemp("local")
    server = Server(
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
    that a batch-size-dependent build, llama.cpp with llamafile kernels, answers differently)."""
    from batchyard.engines.llama_runtime import batch_invariant

    assert batch_invariant()
    client = client_for(local)
    topics = ["the sea", "a cat", "bread", "the moon", "trains", "winter", "music", "a garden"]
    prompts = {f"p{i}": f"Write one sentence about {topics[i % 8]} (#{i})." for i in range(12, 24)}
    together = batch_texts(client, {k: ask(v, max_tokens=32) for k, v in prompts.items()})
    for key, prompt in prompts.items():
        alone = client.messages.create(**call(prompt, max_tokens=32))
        assert together[key].message.content[0].text == alone.content[0].text, key
