"""The embedded runtime's KV budget on the real SmolLM2 weights: sequences wait or are
preempted to stay within it and answer bit for bit as without it; an idle runtime
hands its KV slices back to the system."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from batchyard.engines.local.engine import f16_weights, shipped_weights
from batchyard.engines.local.generation import Generation, Sampling
from batchyard.engines.local.runtime import LlamaRuntime
from tests.integration.test_prefix_runtime import ITEMS, generate, prompt

STEPS = 24


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return f16_weights(shipped_weights(), tmp_path_factory.mktemp("models"))


@pytest.mark.parametrize("cache_mb", [0, 64], ids=["no-prefix-cache", "prefix-cache"])
def test_a_tight_budget_preempts_and_answers_bit_for_bit(weights: Path, cache_mb: int) -> None:
    texts = [prompt(i) for i in ITEMS[:3]]
    free = LlamaRuntime(weights, n_seq=4, n_ctx_seq=640, n_threads=2, prefix_cache_bytes=0)
    try:
        alone = [generate(free, [t], STEPS, digests=True)[0].logit_digests for t in texts]
        longest = max(len(free.tokenize(t, add_special=False)) for t in texts)
        # two prompts fit, and grow together halfway through their answers: then one
        # of them must go (preempted), and comes back once the other has ended
        budget = 2 * free.kv.layout.held(longest + STEPS // 2)
    finally:
        free.close()
    rt = LlamaRuntime(
        weights,
        n_seq=4,
        n_ctx_seq=640,
        n_threads=2,
        prefix_cache_bytes=cache_mb << 20,
        kv_budget_bytes=budget,
    )
    try:
        gens = generate(rt, texts, STEPS, digests=True)
        assert rt.preemptions > 0
        assert [g.logit_digests for g in gens] == alone
        # usage is the prompt as sent, however often it was prefilled again
        assert all(
            g.prompt_length == len(rt.tokenize(t, add_special=False))
            for g, t in zip(gens, texts, strict=True)
        )
        # what the slices held stayed within it, but for a prefill's throwaway padding
        # (a piece is under 64 tokens)
        assert 0 < rt.kv.peak <= budget + len(texts) * rt.kv.layout.held(64)
    finally:
        rt.close()


def test_an_idle_runtime_hands_its_kv_slices_back(weights: Path) -> None:
    rt = LlamaRuntime(weights, n_seq=4, n_ctx_seq=640, n_threads=2)
    try:
        assert rt.kv.releasable  # the slices were found in llama.cpp's buffer
        generate(rt, [prompt(i) for i in ITEMS[:4]], STEPS)
        deadline = time.monotonic() + 10
        while rt.kv.held() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rt.kv.held() == 0
        assert rt.kv.releases > 0
        # and the slices work as before once handed back
        assert generate(rt, [prompt(ITEMS[0])], 4)[0].output_tokens == 4
    finally:
        rt.close()


def test_a_budget_below_a_useful_sequence_is_refused(weights: Path) -> None:
    with pytest.raises(ValueError, match="KV budget"):
        LlamaRuntime(weights, n_seq=2, n_ctx_seq=256, n_threads=2, kv_budget_bytes=1 << 16)


def test_a_copied_prefix_counts_every_cell_the_copy_wrote(weights: Path) -> None:
    """A cached KV is restored whole, then cut after the shared prefix: the slice's pages
    past the cut were written all the same, and the pool counts them (seen from the
    runtime's own thread, as the sequence starts)."""
    rt = LlamaRuntime(weights, n_seq=2, n_ctx_seq=640, n_threads=2)
    try:
        generate(rt, [prompt(ITEMS[0])], 8)  # its KV, answer included, is kept
        assert rt.cache is not None
        (entry,) = rt.cache.entries()
        seen: list[tuple[int, int]] = []
        done = threading.Event()
        g = Generation(
            prompt=rt.tokenize(prompt(ITEMS[1]), add_special=False),
            max_tokens=1,
            stop=[],
            sampling=Sampling(temperature=0),
            done=lambda g: done.set(),
            on_start=lambda g: seen.append((rt.kv.high[g.seq], g.prefilled)),
        )
        rt.submit(g)
        assert done.wait(60) and g.error is None
        ((held, prefilled),) = seen
        assert held == len(entry.tokens) > prefilled == g.cache_read > 0
    finally:
        rt.close()
