"""Prefix KV reuse in the embedded runtime, on the real SmolLM2 weights: the same
greedy answers with and without a cache hit, under eviction, and after cancels."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from batchyard.engines.local.engine import f16_weights, shipped_weights
from batchyard.engines.local.generation import Generation, Sampling
from batchyard.engines.local.runtime import LlamaRuntime

SYSTEM = "You sort customer messages into one word labels. " + " ".join(
    f"Example {i}: 'my parcel number {i} came late' is labelled delivery." for i in range(18)
)


def prompt(item: str) -> str:
    return (
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{item}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


ITEMS = [
    "The box was crushed.",
    "I was charged twice.",
    "Where is my order?",
    "The app crashes on start.",
    "Please cancel my subscription.",
]


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return f16_weights(shipped_weights(), tmp_path_factory.mktemp("models"))


def runtime(weights: Path, cache_mb: float) -> LlamaRuntime:
    return LlamaRuntime(
        weights, n_seq=4, n_ctx_seq=640, n_threads=2, prefix_cache_bytes=int(cache_mb * (1 << 20))
    )


@pytest.fixture(scope="module")
def uncached(weights: Path) -> Iterator[LlamaRuntime]:
    rt = runtime(weights, 0)
    yield rt
    rt.close()


def _setter(event: threading.Event) -> Callable[[Generation], None]:
    return lambda g: event.set()


def generate(
    rt: LlamaRuntime,
    texts: list[str],
    max_tokens: int = 8,
    digests: bool = False,
    grammars: list[str | None] | None = None,
) -> list[Generation]:
    events = [threading.Event() for _ in texts]
    gens = [
        Generation(
            prompt=rt.tokenize(t, add_special=False),
            max_tokens=max_tokens,
            stop=[],
            sampling=Sampling(temperature=0),
            done=_setter(e),
            logit_digests=[] if digests else None,
            grammar=grammar,
        )
        for t, e, grammar in zip(texts, events, grammars or [None] * len(texts), strict=True)
    ]
    for g in gens:
        rt.submit(g)
    for e in events:
        assert e.wait(120)
    assert all(g.error is None for g in gens)
    return gens


@pytest.fixture(scope="module")
def expected(uncached: LlamaRuntime) -> list[str]:
    return [g.text for g in generate(uncached, [prompt(i) for i in ITEMS])]


def test_hits_answer_as_a_full_prefill_does(weights: Path, expected: list[str]) -> None:
    rt = runtime(weights, 256)
    try:
        gens = generate(rt, [prompt(i) for i in ITEMS])
        shared = len(rt.tokenize(prompt(""), add_special=False)) - 8
        # the first computes the system prompt; the others wait for it and copy it
        assert gens[0].cache_read == 0
        assert all(g.cache_read >= shared for g in gens[1:]), [g.cache_read for g in gens]
        assert [g.text for g in gens] == expected
        # the same prompt again: all but its last two tokens come from the cache
        again = generate(rt, [prompt(ITEMS[2])])[0]
        assert again.cache_read == len(again.prompt) - 2
        assert again.text == expected[2]
    finally:
        rt.close()


def test_a_tiny_budget_evicts_and_answers_stay_right(weights: Path, expected: list[str]) -> None:
    rt = runtime(weights, 12)  # room for one snapshot of this prompt at a time
    try:
        texts = [g.text for g in generate(rt, [prompt(i) for i in ITEMS])]
        texts += [g.text for g in generate(rt, [prompt(i) for i in reversed(ITEMS)])]
        assert texts == expected + expected[::-1]
        assert rt.cache is not None
        assert rt.cache.stats.evicted > 0 and rt.cache.stats.hits > 0
        assert rt.cache.used_bytes <= rt.cache.budget_bytes
    finally:
        rt.close()


def test_cancelled_sequences_leave_no_entry(weights: Path, expected: list[str]) -> None:
    rt = runtime(weights, 256)
    try:
        done = threading.Event()
        doomed = Generation(
            prompt=rt.tokenize(prompt("Cancel me halfway."), add_special=False),
            max_tokens=200,
            stop=[],
            sampling=Sampling(temperature=0),
            done=lambda g: done.set(),
        )
        rt.submit(doomed)
        deadline = time.monotonic() + 60
        while doomed.output_tokens < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        doomed.cancelled = True
        assert done.wait(60)
        assert rt.cache is not None
        unique = doomed.prompt[-12:]
        for entry in rt.cache.entries():
            tail = entry.tokens[len(doomed.prompt) - 12 : len(doomed.prompt)]
            assert tail != unique, "a cancelled sequence was kept"
        # what it shared is still served right
        gens = generate(rt, [prompt(i) for i in ITEMS])
        assert [g.text for g in gens] == expected
    finally:
        rt.close()


def test_the_faster_non_deterministic_runtime_reuses_prefixes_too(weights: Path) -> None:
    rt = LlamaRuntime(
        weights,
        n_seq=4,
        n_ctx_seq=640,
        n_threads=2,
        prefix_cache_bytes=64 << 20,
        deterministic=False,
    )
    try:
        gens = generate(rt, [prompt(i) for i in ITEMS[:3]])
        assert all(g.text and 0 < g.output_tokens <= 8 for g in gens)
        assert all(g.cache_read > 0 for g in gens[1:])
    finally:
        rt.close()


@pytest.mark.parametrize("flash", [False, True], ids=["matmul-attention", "flash-attention"])
def test_logits_are_the_same_bits_alone_in_a_batch_and_after_a_hit(
    weights: Path, flash: bool
) -> None:
    """The strongest form of determinism: every token's logits, not just the text."""
    texts = [prompt(i) for i in ITEMS]
    cold = LlamaRuntime(
        weights, n_seq=4, n_ctx_seq=640, n_threads=2, prefix_cache_bytes=0, flash_attention=flash
    )
    try:
        alone = [generate(cold, [t], 12, digests=True)[0].logit_digests for t in texts]
        together = [g.logit_digests for g in generate(cold, texts, 12, digests=True)]
    finally:
        cold.close()
    assert together == alone
    rt = LlamaRuntime(weights, n_seq=4, n_ctx_seq=640, n_threads=2, flash_attention=flash)
    try:
        hits = generate(rt, texts, 12, digests=True)
        assert all(g.cache_read > 0 for g in hits[1:])
        assert [g.logit_digests for g in hits] == alone
        again = generate(rt, texts[::-1], 12, digests=True)[::-1]
        assert all(g.cache_read == len(g.prompt) - 2 for g in again)
        assert [g.logit_digests for g in again] == alone
    finally:
        rt.close()
