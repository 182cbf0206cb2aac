"""The batch-invariant flash attention of `patches/llama.cpp`, on the real SmolLM2 weights:
a prompt's logits are the same bits however it is cut into calls (llama.cpp's own kernel
rounds a piece of 64 rows or more another way), and they match plain attention's (matrix
products) within rounding, so the kernel computes attention, not just something stable."""

from __future__ import annotations

import os
from pathlib import Path

import llama_cpp as ll
import numpy as np
import pytest
from llama_cpp import Llama

from batchyard.engines.local.calls import FLASH_TILE_ROWS
from batchyard.engines.local.context import (
    batch_invariant_attention,
    invariant_attention_probe,
    load_model,
)
from batchyard.engines.local.engine import f16_weights, shipped_weights
from batchyard.engines.local.runtime import LlamaRuntime

REQUIRED = bool(os.environ.get("BATCHYARD_REQUIRE_INVARIANT_ATTENTION"))
"""Set by `make test`: the kernel must be built in (else its tests would only skip)."""

needs_kernel = pytest.mark.skipif(
    invariant_attention_probe() is None, reason="llama.cpp built without patches/llama.cpp"
)

TEXT = (
    "You sort customer messages into one word labels: delivery, billing, account, product,"
    " refund or other. "
    + " ".join(f"Example {i}: 'my parcel number {i} came late' is delivery." for i in range(24))
)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return f16_weights(shipped_weights(), tmp_path_factory.mktemp("models"))


def logits(weights: Path, *, flash: bool, n_batch: int, tokens: int = 300) -> np.ndarray:
    """The logits of every position of TEXT's first `tokens` tokens, computed in calls of
    `n_batch` tokens."""
    llm = Llama(
        model_path=str(weights),
        n_ctx=512,
        n_batch=n_batch,
        n_ubatch=n_batch,
        n_threads=2,
        flash_attn=flash,
        logits_all=True,
        verbose=False,
    )
    try:
        ids = llm.tokenize(TEXT.encode(), add_bos=False)[:tokens]
        assert len(ids) == tokens
        llm.eval(ids)
        return np.array(llm.scores[:tokens])
    finally:
        llm.close()


def test_the_kernel_is_built_in_where_required() -> None:
    if not REQUIRED:
        pytest.skip("BATCHYARD_REQUIRE_INVARIANT_ATTENTION is not set")
    assert invariant_attention_probe() is not None


@needs_kernel
def test_it_takes_smollm2_and_refuses_the_heads_it_cannot_do(weights: Path) -> None:
    model = load_model(weights)
    try:
        assert batch_invariant_attention(model)  # 9 query heads on 3 KV heads of 64
    finally:
        ll.llama_model_free(model)
    probe = invariant_attention_probe()
    assert probe(9, 3, 64, 64) == 1
    assert probe(8, 8, 128, 128) == 1
    assert probe(16, 1, 576, 512) == 0  # keys wider than values (MLA): ggml's own kernels
    assert probe(128, 1, 64, 64) == 0  # more query heads on a KV head than a block holds
    assert probe(9, 2, 64, 64) == 0


@needs_kernel
def test_a_prompt_has_the_same_logits_however_it_is_cut(weights: Path) -> None:
    whole = logits(weights, flash=True, n_batch=512)  # one call of 300 rows
    for n_batch in (2, 70):  # 150 calls of 2 rows; 70-row calls and a last of 20
        assert np.array_equal(logits(weights, flash=True, n_batch=n_batch), whole), n_batch


@needs_kernel
def test_it_agrees_with_plain_attention(weights: Path) -> None:
    """Measured: 0.054 at most apart, as llama.cpp's own tiled kernel is (on a piece of
    300 rows the two kernels give the same bits: they share the tiles' arithmetic)."""
    flash = logits(weights, flash=True, n_batch=512)
    plain = logits(weights, flash=False, n_batch=512)
    assert np.isfinite(flash).all()
    assert float(np.abs(flash - plain).max()) < 0.1
    assert (flash.argmax(axis=1) == plain.argmax(axis=1)).mean() > 0.99


@needs_kernel
def test_the_runtime_then_prefills_in_pieces_of_any_size(weights: Path) -> None:
    """So test_prefix_runtime's bit-for-bit checks run on pieces of 64 rows and more."""
    rt = LlamaRuntime(weights, n_seq=2, n_ctx_seq=512, n_threads=2)
    try:
        assert rt._calls.max_piece == rt.n_batch >= FLASH_TILE_ROWS
    finally:
        rt.close()
