"""KV memory on demand: give the pages of a just-created, all-zero KV cache back to the OS.

llama.cpp allocates the whole KV cache when a context is made (every sequence's
slice, `n_seq x n_ctx_seq` tokens) and fills it with zeros, so a server that has
answered nothing holds it all (1.5 GB for 32 x 2048 tokens of SmolLM2). Pages of
an anonymous mapping dropped with `madvise(MADV_DONTNEED)` read back as zeros,
which is exactly what the buffer holds then; the OS gives a page again only when
a sequence writes into it. So the idle server holds about its weights, and RSS
grows with the sequences that run.

The buffer is found among the anonymous mappings that appeared while the
context was made: the kernel merges neighbouring ones, so each is walked chunk by
chunk through glibc's headers of memory-mapped chunks (a `prev_size` that is the
chunk's offset from the mapping's start, then a `size` with the IS_MMAPPED bit),
and the one chunk whose size is the KV cache's is released. When that is not
unambiguous (another allocator, a header that does not read as expected),
nothing is done.

The chunk is also marked `MADV_NOHUGEPAGE` first. Where transparent huge pages are
`always` (the default of many distributions), a sequence's first write would
otherwise bring back a whole 2 MB page (about three sequences' slices of a layer of
SmolLM2), and khugepaged would fold the few pages in use into whole ones: measured
with them `always`, idle RSS 476-554 MB (as khugepaged went by) instead of 383-387
and 1.9 GB at the peak of a 32-sequence batch instead of 0.5, the whole cache
resident again.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import sys
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger("batchyard.llama")

MADV_DONTNEED = 4
MADV_NOHUGEPAGE = 15
IS_MMAPPED = 2
_T = TypeVar("_T")


def _u64(address: int) -> int:
    return int(ctypes.c_uint64.from_address(address).value)


def _chunk_at(at: int, end: int) -> int:
    """The length of the glibc mmapped chunk starting at page `at` (its header sits
    `lead` bytes in, where `prev_size` says `lead`), or 0 if there is none."""
    page = mmap.PAGESIZE
    for lead in range(0, page, 16):
        size = _u64(at + lead + 8)
        if _u64(at + lead) == lead and size & IS_MMAPPED and size & ~7:
            length = lead + (size & ~7)
            return length if length % page == 0 and at + length <= end else 0
    return 0


def mapped_chunks(start: int, end: int, size: int = 0) -> list[tuple[int, int]]:
    """The glibc chunks found in the anonymous mapping [start, end), as (start, end): those
    that follow each other from its start, and (when `size` is given) one of about `size`
    bytes that ends it; the kernel merges a new mapping with its neighbour, so either end
    of a mapping may be a chunk and the rest something else."""
    page = mmap.PAGESIZE
    chunks: list[tuple[int, int]] = []
    at = start
    while at < end and (length := _chunk_at(at, end)):
        chunks.append((at, at + length))
        at += length
    if size and at < end:
        for length in range(-(-size // page) * page, size + 3 * page, page):
            tail = end - length
            if tail >= at and _chunk_at(tail, end) == length:
                chunks.append((tail, end))
                break
    return chunks


def anonymous_mappings() -> set[tuple[int, int]]:
    """(start, end) of this process's anonymous mappings (Linux)."""
    found: set[tuple[int, int]] = set()
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split()
                if len(fields) == 5 and fields[4] == "0" and fields[1].startswith("rw"):
                    start, end = (int(x, 16) for x in fields[0].split("-"))
                    found.add((start, end))
    except OSError:
        pass
    return found


def make_and_release(
    make: Callable[[], _T], size_of: Callable[[_T], int]
) -> tuple[_T, tuple[int, int] | None]:
    """Run `make` (which allocates a zero-filled buffer of `size_of(made)` bytes) and drop
    that buffer's pages; returns what `make` returned and the (start, end) of the memory
    chunk holding that buffer, whose pages are now released (None if not found)."""
    if not sys.platform.startswith("linux"):
        return make(), None
    before = anonymous_mappings()
    made = make()
    kv_bytes = size_of(made)
    page = mmap.PAGESIZE
    fits = [
        (start, end)
        for mapping in anonymous_mappings() - before
        for start, end in mapped_chunks(*mapping, kv_bytes)
        if kv_bytes <= end - start <= kv_bytes + 2 * page
    ]
    if len(fits) != 1:
        log.debug("KV buffer not found unambiguously (%d candidates); kept resident", len(fits))
        return made, None
    start, end = fits[0]
    # the first page holds the allocator's header, the last may hold another's data
    advise(start + page, end - page, MADV_NOHUGEPAGE)
    if not release_pages(start + page, end - page):
        return made, None
    return made, (start, end)


_libc: ctypes.CDLL | None = None


def release_pages(lo: int, hi: int) -> bool:
    """Give the whole pages inside [lo, hi) back to the OS (they read back as zeros)."""
    return advise(lo, hi, MADV_DONTNEED)


def advise(lo: int, hi: int, advice: int) -> bool:
    """`madvise(advice)` on the whole pages inside [lo, hi); whether it was done."""
    global _libc
    page = mmap.PAGESIZE
    lo, hi = -(-lo // page) * page, hi // page * page
    if hi <= lo:
        return True
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    if _libc.madvise(lo, hi - lo, advice) != 0:
        log.debug(
            "madvise(%d) failed (errno %d); pages kept as they are", advice, ctypes.get_errno()
        )
        return False
    return True
