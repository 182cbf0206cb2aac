"""Known prompt prefixes (kept, or held by a running sequence) copied into a new sequence's KV."""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import llama_cpp as ll

from batchyard.engines.local.prefix_cache import CacheEntry, PrefixCache, common_prefix

if TYPE_CHECKING:
    from batchyard.engines.local.generation import Generation

log = logging.getLogger("batchyard.llama")


def _usable(g: Generation) -> int:
    """How much of a prompt may come from elsewhere: all but its last two tokens (the last
    one's logits start the answer; a prefill is never one token, see `PaddedCalls.chunk`)."""
    return len(g.prompt) - 2


class PrefixReuse:
    """The runtime's use of its `PrefixCache`: what a new sequence copies, waits for, keeps."""

    def __init__(self, ctx: Any, memory: Any, cache: PrefixCache, wait_for_prefix: int) -> None:
        self.ctx = ctx
        self.memory = memory
        self.cache = cache
        self.wait_for_prefix = wait_for_prefix
        """A prompt sharing this many more tokens with one still prefilling waits for it."""

    def should_wait(self, g: Generation, active: Iterable[Generation]) -> bool:
        """Whether `g` shares a long prefix with a prompt still being prefilled, more than
        is at hand now: it then waits a few steps and copies instead of recomputing."""
        if self.wait_for_prefix <= 0:
            return False
        usable = _usable(g)
        at_hand = self.cache.longest(g.prompt[:usable], touch=False)[1]
        for other in active:
            if other.prefilled < len(other.prompt):
                coming = common_prefix(other.prompt, g.prompt[:usable])
                if coming - max(at_hand, other.prefilled) >= self.wait_for_prefix:
                    return True
        return False

    def _match(
        self, g: Generation, active: Iterable[Generation]
    ) -> tuple[CacheEntry | None, Generation | None, int, int]:
        """The longest known prefix of `g`'s prompt: a cache entry, or a running sequence
        whose KV holds more of it (then the source); how many tokens match; and how many
        cells a copy of it writes (the whole KV copied from; 0 under a block: no copy)."""
        usable = g.prompt[: _usable(g)]
        entry, matched = self.cache.longest(usable)
        source: Generation | None = None
        for other in active:
            n = common_prefix(other.kv_tokens(), usable)
            if n > matched:
                source, matched = other, n
        if matched < self.cache.block:
            written = 0
        elif source is not None:
            written = len(source.kv_tokens())
        else:
            written = len(entry.tokens) if entry is not None else 0
        return entry, source, matched, written

    def would_write(self, g: Generation, active: Iterable[Generation]) -> int:
        """How many cells of its slice `reuse` would write for `g` now (0: none)."""
        return self._match(g, active)[3]

    def reuse(self, g: Generation, active: Iterable[Generation]) -> int:
        """Copy the KV of the longest known prefix of `g`'s prompt into its sequence;
        returns how many cells of its slice the copy wrote (0 if none): the whole of the
        copied KV, though what follows the prefix is removed right after."""
        entry, source, matched, written = self._match(g, active)
        if not written:
            return 0
        if source is not None:
            snapshot = self.snapshot(source.seq)
            if snapshot is None:
                return 0
            blob, size = snapshot
        else:
            assert entry is not None
            blob, size = entry.blob, entry.nbytes
        if ll.llama_state_seq_set_data(self.ctx, blob, size, g.seq) != size:
            log.warning("restoring a cached prefix failed; prefilling the whole prompt")
            ll.llama_memory_seq_rm(self.memory, g.seq, -1, -1)
            return written
        ll.llama_memory_seq_rm(self.memory, g.seq, matched, -1)
        g.prefilled = g.n_past = matched
        self.cache.stats.tokens_served += matched
        if g.resumed:  # its usage was settled on its first admission
            return written
        g.cache_read = matched
        # a breakpoint inside the part read refreshes how long it is kept
        keep_for = max((ttl for p, ttl in g.breakpoints if p <= matched), default=0.0)
        if source is not None or entry is None or len(entry.tokens) > matched:
            # a branch point: keep the shared part alone, so later prompts find it
            self.keep(g, keep_for=keep_for)
        elif keep_for:
            self.cache.pin(entry, keep_for)
        return written

    def snapshot(self, seq: int) -> tuple[Any, int] | None:
        """A copy of a sequence's KV (None if llama.cpp could not write it whole)."""
        size = ll.llama_state_seq_get_size(self.ctx, seq)
        blob = (ctypes.c_uint8 * size)()
        written = ll.llama_state_seq_get_data(self.ctx, blob, size, seq)
        if size == 0 or written != size:
            log.warning("could not copy the KV of a sequence (%d of %d bytes)", written, size)
            return None
        return blob, size

    def keep(self, g: Generation, *, keep_for: float) -> Any:
        """Put the KV `g` holds now into the cache."""
        tokens = g.kv_tokens()
        held = self.cache.covers(tokens)
        if held is not None:
            if keep_for:
                self.cache.pin(held, keep_for)
            return held
        snapshot = self.snapshot(g.seq)
        if snapshot is None:
            return None
        return self.cache.add(tokens, *snapshot, keep_for=keep_for)

    def keep_breakpoint(self, g: Generation) -> None:
        """Keep the prefix that ends at a breakpoint the prefill has just reached."""
        keep = [ttl for p, ttl in g.breakpoints if p == g.prefilled]
        if not keep or g.decoded or g.prefilled <= g.kept_upto:
            return  # a preempted sequence keeps each breakpoint once
        g.kept_upto = g.prefilled
        kept = self.keep(g, keep_for=max(keep))
        if kept is not None and g.prefilled > g.cache_read:
            g.cache_creation = g.prefilled - g.cache_read
            if max(keep) >= 3600:
                g.cache_creation_1h = g.cache_creation
