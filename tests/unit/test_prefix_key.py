"""Prompt-prefix keys: requests that start alike share one, whatever follows."""

from __future__ import annotations

from typing import Any

import msgspec

from batchyard.translate.envelope import unservable, wrap_chat_body
from batchyard.wire.prefix_key import PREFIX_BYTES, batch_prefix, prefix_key

LONG = "Label the sentiment of the review as positive or negative. " * 30


def params(system: Any = None, user: str = "x", model: str = "m", **extra: Any) -> bytes:
    body: dict[str, Any] = {"model": model, "max_tokens": 8, **extra}
    if system is not None:
        body["system"] = system
    body["messages"] = [{"role": "user", "content": user}]
    return msgspec.json.encode(body)


def test_a_long_shared_system_prompt_gives_one_key_whatever_follows() -> None:
    assert len(LONG) > PREFIX_BYTES
    assert prefix_key(params(LONG, "item 1")) == prefix_key(params(LONG, "item 2"))
    assert prefix_key(params(LONG, "item 1")) != prefix_key(params("!" + LONG, "item 1"))
    # What differs only past the first PREFIX_BYTES still shares the key.
    assert prefix_key(params(LONG + "!", "item 1")) == prefix_key(params(LONG, "item 1"))


def test_the_model_and_the_tools_are_part_of_the_key() -> None:
    base = prefix_key(params(LONG))
    assert prefix_key(params(LONG, model="other")) != base
    tool = {"name": "t", "input_schema": {"type": "object"}}
    assert prefix_key(params(LONG, tools=[tool])) != base


def test_a_short_prompt_is_keyed_with_its_item() -> None:
    assert prefix_key(params("Be brief.", "item 1")) != prefix_key(params("Be brief.", "item 2"))


def test_a_cache_control_mark_ends_the_key_early() -> None:
    block = [{"type": "text", "text": "Shared rules.", "cache_control": {"type": "ephemeral"}}]
    assert prefix_key(params(block, "item 1")) == prefix_key(params(block, "item 2"))


def test_a_marked_system_block_is_keyed_whole_whichever_key_comes_first() -> None:
    def system(text: str) -> list[dict[str, Any]]:
        return [{"cache_control": {"type": "ephemeral"}, "type": "text", "text": text}]

    assert prefix_key(params(system("rules one"), "a")) == prefix_key(
        params(system("rules one"), "b")
    )
    assert prefix_key(params(system("rules one"))) != prefix_key(params(system("rules two")))


def test_a_malformed_envelope_has_no_key() -> None:
    assert prefix_key(b'{"batchyard_chat": {"model": "m"') is None


def test_no_system_prompt_keys_the_start_of_the_messages() -> None:
    shared = LONG + " Now the review: "
    assert prefix_key(params(user=shared + "good")) == prefix_key(params(user=shared + "bad"))


def test_an_openai_batch_line_is_keyed_by_its_chat_body() -> None:
    def chat(user: str) -> bytes:
        system = {"role": "system", "content": LONG}
        body = {"model": "m", "messages": [system, {"role": "user", "content": user}]}
        return wrap_chat_body(msgspec.json.encode(body))

    assert prefix_key(chat("a")) == prefix_key(chat("b")) is not None
    assert prefix_key(chat("a")) != prefix_key(params(LONG, "a"))
    assert prefix_key(unservable("embeddings are not served here")) is None


def test_not_an_object_has_no_key() -> None:
    assert prefix_key(b"[1, 2]") is None
    assert prefix_key(b"{not json") is None


def test_a_batch_takes_its_most_common_key_or_none_when_nothing_is_shared() -> None:
    mixed = [params(LONG, f"i{i}") for i in range(5)] + [params("B" * 2000, "i")] * 2
    assert batch_prefix(mixed) == prefix_key(mixed[0])
    assert batch_prefix([params("Be brief.", f"i{i}") for i in range(5)]) is None
    assert batch_prefix([params("Be brief.")]) == prefix_key(params("Be brief."))
    assert batch_prefix([]) is None
