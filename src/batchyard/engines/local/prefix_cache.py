"""Which token prefixes the embedded engine holds the KV of, to prefill only the rest.

An entry is the KV of one token sequence from position 0 (a snapshot of a
llama.cpp sequence, kept as bytes outside the context) with the tokens it was
computed from. A new prompt that starts with the first n tokens of an entry
restores that KV and prefills only what follows: the numbers are the same as a
full prefill (the runtime's kernels give each token the same result whatever
else is in its batch), so answers do not change with a hit.

Entries are found through an index of block hashes, as vLLM's automatic prefix
caching does: the hash of each whole `block` of tokens chained to the hash of
the blocks before it, so a lookup walks the prompt's blocks and stops at the
first one no entry has; the match is then extended token by token inside the
entry. Eviction is least recently used within a byte budget; entries pinned by
a `cache_control` breakpoint (`keep_until`) go only after every unpinned one,
soonest expiry first. A hit needs the same tokens from position 0, so an entry
carries nothing of one tenant to another that did not send those tokens.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

BLOCK_TOKENS = 16


def common_prefix(a: Sequence[int], b: Sequence[int], start: int = 0) -> int:
    """Length of the common prefix of `a` and `b`, known equal up to `start`."""
    lo, hi = start, min(len(a), len(b))
    if a[lo:hi] == b[lo:hi]:
        return hi
    # invariant: a[:lo] == b[:lo] and a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def block_hashes(tokens: Sequence[int], block: int = BLOCK_TOKENS) -> list[int]:
    """The chained hash of each whole block of `tokens`."""
    hashes: list[int] = []
    h = 0
    for i in range(0, len(tokens) - block + 1, block):
        h = hash((h, *tokens[i : i + block]))
        hashes.append(h)
    return hashes


@dataclass(eq=False, slots=True)
class CacheEntry:
    tokens: list[int]
    blob: object
    nbytes: int
    last_used: float
    keep_until: float = 0.0
    hashes: list[int] = field(default_factory=list)
    id: int = 0


@dataclass(slots=True)
class CacheStats:
    lookups: int = 0
    hits: int = 0
    tokens_served: int = 0
    inserted: int = 0
    evicted: int = 0


class PrefixCache:
    def __init__(
        self,
        budget_bytes: int,
        *,
        block: int = BLOCK_TOKENS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.budget_bytes = budget_bytes
        self.block = block
        self.clock = clock
        self.used_bytes = 0
        self.stats = CacheStats()
        self._entries: dict[int, CacheEntry] = {}
        self._by_hash: dict[int, dict[int, CacheEntry]] = {}
        self._ids = itertools.count(1)

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> list[CacheEntry]:
        return list(self._entries.values())

    def longest(
        self, tokens: Sequence[int], *, touch: bool = True
    ) -> tuple[CacheEntry | None, int]:
        """The entry sharing the longest prefix with `tokens`, and that prefix's length."""
        self.stats.lookups += touch
        best: CacheEntry | None = None
        depth = 0
        for i, h in enumerate(block_hashes(tokens, self.block)):
            holders = self._by_hash.get(h)
            if not holders:
                break
            # a hash match is checked against the tokens themselves (collisions)
            end = (i + 1) * self.block
            candidate = max(holders.values(), key=lambda e: e.last_used)
            if candidate.tokens[:end] != list(tokens[:end]):
                break
            best, depth = candidate, end
        if best is None:
            return None, 0
        # extend inside the blocks of every entry that holds the whole matched blocks
        matched = depth
        for entry in self._by_hash[best.hashes[depth // self.block - 1]].values():
            n = common_prefix(entry.tokens, tokens, depth)
            if n > matched:
                best, matched = entry, n
        if touch:
            best.last_used = self.clock()
            self.stats.hits += 1
        return best, matched

    def covers(self, tokens: Sequence[int]) -> CacheEntry | None:
        """An entry that starts with all of `tokens`, if any."""
        entry, n = self.longest(tokens, touch=False)
        return entry if entry is not None and n == len(tokens) else None

    def add(
        self, tokens: Sequence[int], blob: object, nbytes: int, *, keep_for: float = 0.0
    ) -> CacheEntry | None:
        """Keep `blob` (the KV of `tokens`); None when it cannot fit the budget at all."""
        if nbytes > self.budget_bytes or len(tokens) < self.block:
            return None
        now = self.clock()
        held = self.covers(tokens)
        if held is not None:  # already there (as a whole or inside a longer entry)
            held.last_used = now
            held.keep_until = max(held.keep_until, now + keep_for if keep_for else 0.0)
            return held
        self._make_room(nbytes)
        entry = CacheEntry(
            tokens=list(tokens),
            blob=blob,
            nbytes=nbytes,
            last_used=now,
            keep_until=now + keep_for if keep_for else 0.0,
            hashes=block_hashes(tokens, self.block),
            id=next(self._ids),
        )
        self._entries[entry.id] = entry
        for h in entry.hashes:
            self._by_hash.setdefault(h, {})[entry.id] = entry
        self.used_bytes += nbytes
        self.stats.inserted += 1
        return entry

    def pin(self, entry: CacheEntry, keep_for: float) -> None:
        entry.keep_until = max(entry.keep_until, self.clock() + keep_for)

    def clear(self) -> None:
        for entry in list(self._entries.values()):
            self._remove(entry)

    def _make_room(self, nbytes: int) -> None:
        if self.used_bytes + nbytes <= self.budget_bytes:
            return
        now = self.clock()
        order = sorted(
            self._entries.values(),
            key=lambda e: (
                e.keep_until > now,
                e.keep_until if e.keep_until > now else 0.0,
                e.last_used,
            ),
        )
        for entry in order:
            if self.used_bytes + nbytes <= self.budget_bytes:
                break
            self._remove(entry)
            self.stats.evicted += 1

    def _remove(self, entry: CacheEntry) -> None:
        if self._entries.pop(entry.id, None) is None:
            return
        for h in entry.hashes:
            holders = self._by_hash.get(h)
            if holders is not None:
                holders.pop(entry.id, None)
                if not holders:
                    del self._by_hash[h]
        self.used_bytes -= entry.nbytes
