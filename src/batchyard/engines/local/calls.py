"""A step's llama.cpp calls, padded so a token's logits never depend on what shares its call."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import llama_cpp as ll

if TYPE_CHECKING:
    from batchyard.engines.local.generation import Generation

FLASH_TILE_ROWS = 64
"""llama.cpp's own CPU flash attention takes its tiled loop from this many query rows
a sequence in one piece (GGML_FA_TILE_Q), its plain row-by-row loop below it (the
kernel of `patches/llama.cpp` has no such switch)."""


MAX_PADDING = FLASH_TILE_ROWS - 1
"""The most throwaway tokens a prefill call pads a sequence's chunk with (what pieces
under FLASH_TILE_ROWS bounded it to, before the batch-invariant kernel allowed longer
ones): a throwaway token costs as much compute as a real one."""


def runs(generations: list[Generation]) -> list[list[Generation]]:
    """`generations` (in id order) cut into runs of consecutive sequence ids."""
    out: list[list[Generation]] = []
    for g in generations:
        if out and out[-1][-1].seq == g.seq - 1:
            out[-1].append(g)
        else:
            out.append([g])
    return out


class PaddedCalls:
    """Prefill and decode calls on one context, each token in a piece of two or more
    (see the `runtime.py` module's docstring for why); with `flash_tiles` (flash
    attention, deterministic) no piece reaches the kernel's tile of FLASH_TILE_ROWS."""

    def __init__(
        self,
        ctx: Any,
        memory: Any,
        *,
        n_batch: int,
        n_ctx_seq: int,
        n_seq_max: int,
        pad_token: int,
        flash_tiles: bool,
    ) -> None:
        self.ctx = ctx
        self.memory = memory
        self.n_batch = n_batch
        self.n_ctx_seq = n_ctx_seq
        self.n_seq_max = n_seq_max
        self.pad_token = pad_token
        # llama.cpp's own flash attention kernel tiles a piece of 64 rows or more another way
        self.max_piece = FLASH_TILE_ROWS - 1 if flash_tiles else n_batch
        self.batch = ll.llama_batch_init(n_batch, 0, 1)
        self._touched: dict[int, int] = {}

    def close(self) -> None:
        ll.llama_batch_free(self.batch)

    def chunk(self, g: Generation, room: int) -> int:
        """How many prompt tokens `g` prefills now: never a piece of one token (unless the
        whole prompt is one), so a prompt token is always computed by the same kernels
        whatever the load and however much of the prompt came from the cache."""
        remaining = len(g.prompt) - g.prefilled
        # a chunk ends at a cache_control breakpoint, so that prefix can be kept
        ahead = [p - g.prefilled for p, _ in g.breakpoints if p - g.prefilled >= 2]
        n = min(room, remaining, self.max_piece, *ahead)
        if 0 < remaining - n < 2:
            n = remaining - 2 if n > 2 else remaining
        return max(n, min(2, remaining))

    def prefill(self, run: list[Generation], room: int, after: Callable[[Generation], None]) -> int:
        """Prompt chunks of a run of consecutive sequence ids, in one call, then `after`
        for each sequence of the run; returns how many tokens it computed.

        llama.cpp computes such a call in one piece only if every sequence brings as
        many tokens, so each chunk is padded to the longest with throwaway tokens after
        its own (later positions: nothing real attends to them), removed right after.
        A finishing chunk asks for the logits of its last two tokens, so a piece never
        has a single output row (whose product would take the other kernel). The
        longer chunks are cut to MAX_PADDING tokens past the shortest, so that a
        throwaway token never costs more than that many per sequence."""
        width = len(run)
        longest = max(len(g.prompt) - g.prefilled for g in run)
        limit = max(2, min(longest, room // width, self.n_batch // width))
        chunks = [(g, self.chunk(g, limit)) for g in run]
        shortest = min(n for _, n in chunks)
        if max(n for _, n in chunks) > shortest + MAX_PADDING:
            chunks = [(g, self.chunk(g, shortest + MAX_PADDING)) for g in run]
        size = max(n for _, n in chunks)
        if width > 1 and any(g.n_past + size > self.n_ctx_seq for g in run):
            # padding would run past a slice's end: one call each, without padding
            used = 0
            for g in run:
                if room - used >= 2:
                    used += self.prefill([g], room - used, after)
            return used
        self.batch.n_tokens = 0
        pads: list[tuple[int, int]] = []
        for g, n in chunks:
            g.logit_index = -1
            end = len(g.prompt)
            for k in range(n):
                at = g.prefilled + k
                index = self._add(g.prompt[at], g.n_past + k, g.seq, at >= end - 2)
                if at == end - 1:
                    g.logit_index = index
            for k in range(n, size):
                self._add(self.pad_token, g.n_past + k, g.seq, False)
            g.prefilled += n
            g.n_past += n
            if size > n:
                pads.append((g.seq, g.n_past))
        self._run(pads)
        for g, _ in chunks:
            after(g)
        return size * width

    def decode(self, decoding: list[Generation], active: Mapping[int, Generation]) -> None:
        """One token of every generating sequence, in one call.

        llama.cpp computes a call in pieces of consecutive sequence ids, and a matrix
        product of one row (a piece of one token) takes another kernel than one of many
        (llamafile's), with other rounding. So the call covers one run of ids, holes and
        a lone sequence padded with a throwaway token of an idle sequence (a free one, the
        spare, or one being prefilled, at its next position), removed right after."""
        self.batch.n_tokens = 0
        ids = {g.seq: g for g in decoding}
        lo, hi = min(ids), max(ids)
        if lo == hi:
            hi = lo + 1 if lo + 1 < self.n_seq_max else lo - 1
            lo, hi = min(lo, hi), max(lo, hi)
        pads: list[tuple[int, int]] = []
        for seq in range(lo, hi + 1):
            g = ids.get(seq)
            if g is not None:
                g.logit_index = self._add(g.last_token, g.n_past, seq, True)
                g.decoded.append(g.last_token)
                g.n_past += 1
                continue
            other = active.get(seq)
            pos = other.n_past if other is not None else 0
            self._add(self.pad_token, pos, seq, True)
            pads.append((seq, pos))
        self._run(pads)

    def drain_touched(self) -> list[tuple[int, int]]:
        """(sequence, cells from 0) of the KV slices the calls since the last drain wrote
        into, throwaway tokens included (their cells were written, then removed)."""
        touched, self._touched = self._touched, {}
        return list(touched.items())

    def _add(self, token: int, pos: int, seq: int, logits: bool) -> int:
        if pos >= self._touched.get(seq, 0):
            self._touched[seq] = pos + 1
        b = self.batch
        i: int = b.n_tokens
        b.token[i] = token
        b.pos[i] = pos
        b.n_seq_id[i] = 1
        b.seq_id[i][0] = seq
        b.logits[i] = logits
        b.n_tokens = i + 1
        return i

    def _run(self, pads: list[tuple[int, int]]) -> None:
        """Compute the call, then drop the padding's KV (`pads`: sequence, first position)."""
        try:
            status = ll.llama_decode(self.ctx, self.batch)
            if status != 0:
                raise RuntimeError(f"llama_decode returned {status}")
        finally:
            for seq, pos in pads:
                ll.llama_memory_seq_rm(self.memory, seq, pos, -1)
