"""PaddedCalls' prefill calls, with llama.cpp's decode stubbed: what each call holds."""

from __future__ import annotations

from typing import Any

import llama_cpp as ll
import pytest

from batchyard.engines.local.calls import MAX_PADDING, PaddedCalls
from batchyard.engines.local.generation import Generation, Sampling


def generation(seq: int, prompt_tokens: int) -> Generation:
    g = Generation(
        prompt=[7] * prompt_tokens, max_tokens=1, stop=[], sampling=Sampling(), done=print
    )
    g.seq = seq
    return g


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[list[tuple[int, int]]]:
    """Each llama_decode call's (sequence, position) tokens."""
    seen: list[list[tuple[int, int]]] = []

    def decode(ctx: Any, batch: Any) -> int:
        seen.append([(batch.seq_id[i][0], batch.pos[i]) for i in range(batch.n_tokens)])
        return 0

    monkeypatch.setattr(ll, "llama_decode", decode)
    monkeypatch.setattr(ll, "llama_memory_seq_rm", lambda *a: True)
    return seen


def padded(flash_tiles: bool) -> PaddedCalls:
    return PaddedCalls(
        None, None, n_batch=512, n_ctx_seq=2048, n_seq_max=4, pad_token=0, flash_tiles=flash_tiles
    )


def per_sequence(call: list[tuple[int, int]]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for seq, _ in call:
        counts[seq] = counts.get(seq, 0) + 1
    return counts


def test_a_long_prompt_alone_is_one_piece_unless_the_kernel_tiles(
    calls: list[list[tuple[int, int]]],
) -> None:
    whole = padded(flash_tiles=False)
    try:
        assert whole.prefill([generation(0, 300)], 512, lambda g: None) == 300
    finally:
        whole.close()
    tiled = padded(flash_tiles=True)
    try:
        assert tiled.prefill([generation(0, 300)], 512, lambda g: None) == 63
    finally:
        tiled.close()
    assert [len(c) for c in calls] == [300, 63]


def test_a_short_chunk_beside_a_long_one_is_padded_by_at_most_max_padding(
    calls: list[list[tuple[int, int]]],
) -> None:
    pc = padded(flash_tiles=False)
    long, short = generation(0, 400), generation(1, 10)
    try:
        pc.prefill([long, short], 512, lambda g: None)
    finally:
        pc.close()
    # both as many tokens (one piece), the short one's 10 plus throwaway ones
    assert per_sequence(calls[0]) == {0: 10 + MAX_PADDING, 1: 10 + MAX_PADDING}
    assert long.prefilled == 10 + MAX_PADDING
    assert short.prefilled == 10
