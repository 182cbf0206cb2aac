"""The KV pool's accounts (what a slice holds, the budget) and how it finds its slices."""

from __future__ import annotations

import ctypes

from batchyard.engines.local.kv_pool import KvLayout, KvPool, locate

ROW = 384  # SmolLM2-135M: 3 KV heads x 64 dims x 2 bytes
FLASH = KvLayout(n_layer=30, n_stream=5, cells=512, k_row=ROW, v_row=ROW, v_trans=False)
MATMUL = KvLayout(n_layer=30, n_stream=5, cells=512, k_row=ROW, v_row=ROW, v_trans=True)


def test_a_slice_holds_its_cells_and_a_transposed_v_holds_it_whole() -> None:
    assert FLASH.held(0) == MATMUL.held(0) == 0
    assert FLASH.held(10) == 30 * 10 * 2 * ROW
    assert MATMUL.held(10) == 30 * (10 * ROW + 512 * ROW)
    assert FLASH.held(10_000) == FLASH.held(512)  # never more than the slice


def test_cells_within_a_budget() -> None:
    assert FLASH.cells_within(FLASH.held(100)) == 100
    assert FLASH.cells_within(FLASH.held(100) - 1) == 99
    assert FLASH.cells_within(1 << 40) == 512
    assert MATMUL.cells_within(MATMUL.held(100)) == 100
    assert MATMUL.cells_within(30 * 512 * ROW) == 0  # the V slice alone uses it up


def test_regions_follow_llamas_layout() -> None:
    """Layer after layer a K and a V tensor of [row, cells, streams]: a slice per stream."""
    regions = FLASH.regions(1000, 2)
    assert len(regions) == 60
    tensor = 512 * ROW * 5
    assert regions[0] == (1000 + 2 * 512 * ROW, 1000 + 3 * 512 * ROW)
    assert regions[1][0] == 1000 + tensor + 2 * 512 * ROW
    assert regions[59][0] == 1000 + 59 * tensor + 2 * 512 * ROW
    assert FLASH.total == 60 * tensor


def _buffer(layout: KvLayout, offset: int) -> tuple[ctypes.Array[ctypes.c_char], int, int]:
    size = layout.total + offset + 4096
    buf = ctypes.create_string_buffer(size)
    start = ctypes.addressof(buf)
    return buf, start, start + size


def test_locate_finds_where_the_tensors_start() -> None:
    layout = KvLayout(n_layer=2, n_stream=3, cells=64, k_row=ROW, v_row=ROW, v_trans=False)
    buf, start, end = _buffer(layout, 48)

    def write() -> None:  # two tokens into the last stream: its slices start with data
        for lo, _ in layout.regions(start + 48, 2):
            ctypes.memmove(lo, b"\x01\x02\x03\x04", 4)

    assert locate((start, end), layout, 2, write) == start + 48
    del buf


def test_locate_gives_up_when_nothing_reads_as_written() -> None:
    layout = KvLayout(n_layer=2, n_stream=3, cells=64, k_row=ROW, v_row=ROW, v_trans=False)
    buf, start, end = _buffer(layout, 48)
    assert locate((start, end), layout, 2, lambda: None) is None
    del buf


def test_budget_counts_what_runs_and_what_ended_slices_still_hold() -> None:
    pool = KvPool(FLASH, FLASH.held(300), base=None)
    pool.wrote(0, 200)
    assert pool.held() == FLASH.held(200)
    assert pool.fits({1: 100})
    assert not pool.fits({1: 101})
    assert pool.fits({0: 300})  # a slice's own growth counts once
    assert not pool.release_idle(keep={0})  # a running sequence's slice stays
    # an ended one stops counting, even where its pages cannot be handed back (base
    # unknown): they are the next sequence's to reuse
    assert pool.release_idle(keep=set())
    assert pool.held() == 0
    assert pool.fits({1: 300})
    assert KvPool(FLASH, 0, base=None).fits({0: 512, 1: 512})  # no budget: no limit
