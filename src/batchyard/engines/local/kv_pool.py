"""The KV cache as a pool of memory pages: what each sequence's slice holds, a budget over
the whole, and slices handed back to the OS when they are no longer needed.

llama.cpp lays a context's KV cache out, layer after layer, as a K tensor and a V
tensor of `[row, cells, n_stream]` in one buffer (`kv_memory` finds it): sequence
`s`'s slice of a tensor is one stretch of `cells` rows at `s` slices from the
tensor's start. A token's K row sits at its cell (its position), and so does its V
row with flash attention; without it V is kept transposed (a row per dimension, a
cell's values spread over all of them), so any token touches every page of its
sequence's V slice.

A page costs memory only once written (`kv_memory`), so a slice holds what its
high-water mark says: the most cells used since it was last released. That is what
the budget counts (`KvLayout.held`), and a slice whose sequence has ended is handed
back when the runtime goes idle or the budget needs the room.

Where a slice's pages are is found once, by a probe: two tokens are written into the
spare sequence, and the one start offset at which every tensor's slice for it begins
with written bytes right after unwritten ones is taken. If no offset or more than
one reads so, the pool still keeps its accounts but hands nothing back.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable
from dataclasses import dataclass

from batchyard.engines.local.kv_memory import release_pages

log = logging.getLogger("batchyard.llama")

TENSOR_ALIGNMENT = 32
"""ggml's CPU buffers place tensors at multiples of this."""


@dataclass(frozen=True, slots=True)
class KvLayout:
    n_layer: int
    n_stream: int
    cells: int
    """Cells of one sequence's slice."""
    k_row: int
    """Bytes of one cell's keys in one layer."""
    v_row: int
    v_trans: bool
    """V kept transposed (flash attention off)."""

    def held(self, cells: int) -> int:
        """Bytes a slice holds once its first `cells` cells have been written."""
        if cells <= 0:
            return 0
        v = self.cells * self.v_row if self.v_trans else min(cells, self.cells) * self.v_row
        return self.n_layer * (min(cells, self.cells) * self.k_row + v)

    def cells_within(self, budget: int) -> int:
        """The most cells one slice can use within `budget` bytes."""
        fixed = self.n_layer * self.cells * self.v_row if self.v_trans else 0
        per_cell = self.n_layer * (self.k_row + (0 if self.v_trans else self.v_row))
        return max(0, min(self.cells, (budget - fixed) // per_cell))

    def regions(self, base: int, seq: int) -> list[tuple[int, int]]:
        """(start, end) of `seq`'s slice in every tensor, for a buffer starting at `base`."""
        out = []
        at = base
        for _ in range(self.n_layer):
            for row in (self.k_row, self.v_row):
                stream = self.cells * row
                start = at + seq * stream
                out.append((start, start + stream))
                size = stream * self.n_stream
                at += -(-size // TENSOR_ALIGNMENT) * TENSOR_ALIGNMENT
        return out

    @property
    def total(self) -> int:
        return self.regions(0, 0)[-1][0] + self.cells * self.v_row * self.n_stream


def _zero(address: int, size: int) -> bool:
    return ctypes.string_at(address, size).count(0) == size


def locate(
    chunk: tuple[int, int], layout: KvLayout, probe: int, write: Callable[[], None]
) -> int | None:
    """Where the KV tensors start inside `chunk` (the memory chunk `kv_memory` found), by
    `write` putting two tokens into sequence `probe`, whose slices nothing else has used
    (the last stream: the one before it, unused too, must read as zeros); None unless one
    start reads so."""
    start, end = chunk
    write()
    found = []
    for offset in range(0, 8192, 16):
        base = start + offset
        if base + layout.total > end:
            break
        regions = layout.regions(base, probe)
        if all(not _zero(lo, 4) and _zero(lo - 64, 64) for lo, _ in regions):
            found.append(base)
    if len(found) != 1:
        log.debug("KV slices not located (%d candidates): they stay resident", len(found))
        return None
    return found[0]


class KvPool:
    """What each slice holds, the budget over all of them, and slices handed back."""

    def __init__(self, layout: KvLayout, budget: int, base: int | None) -> None:
        self.layout = layout
        self.budget = budget
        """Bytes the slices may hold together (0: no limit but the slices' size)."""
        self.base = base
        self.high = [0] * layout.n_stream
        self.releases = 0
        self.peak = 0
        """The most bytes the slices held together after a step."""

    @property
    def releasable(self) -> bool:
        return self.base is not None

    def wrote(self, seq: int, cells: int) -> None:
        if cells > self.high[seq]:
            self.high[seq] = cells

    def held(self, cells: dict[int, int] | None = None) -> int:
        """Bytes held by every slice, with `cells` (sequence: cells it will use) on top."""
        more = cells or {}
        return sum(
            self.layout.held(max(high, more.get(seq, 0))) for seq, high in enumerate(self.high)
        )

    def note_peak(self) -> None:
        self.peak = max(self.peak, self.held())

    def fits(self, cells: dict[int, int]) -> bool:
        return self.budget <= 0 or self.held(cells) <= self.budget

    def release(self, seq: int) -> None:
        """Hand `seq`'s slice back to the OS (its KV must be removed from llama.cpp first).

        Where the slices could not be located their pages stay resident, but they are
        the next sequence's to reuse, so the budget stops counting them all the same:
        it then bounds what the running sequences hold."""
        if self.base is not None:
            for lo, hi in self.layout.regions(self.base, seq):
                release_pages(lo, hi)
            self.releases += 1
        self.high[seq] = 0

    def release_idle(self, keep: set[int]) -> bool:
        """Hand back every slice that holds pages and is not in `keep`; whether any was."""
        idle = [s for s, high in enumerate(self.high) if high and s not in keep]
        for seq in idle:
            self.release(seq)
        return bool(idle)
