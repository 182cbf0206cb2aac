"""kv_memory: a zero-filled buffer made like llama.cpp's KV cache (one glibc malloc, big
enough to be a mapping of its own) is found, its pages go back to the OS, it still
reads as zeros, and it is marked no-huge-pages (so a write brings back 4 KB, not 2 MB,
where transparent huge pages are `always`)."""

from __future__ import annotations

import ctypes
import sys

import pytest

from batchyard.engines.local.kv_memory import make_and_release

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")

SIZE = 64 << 20

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]


def zeroed_buffer() -> int:
    address = libc.malloc(SIZE)
    assert address
    libc.memset(address, 0, SIZE)  # resident, as llama.cpp's clear of a new cache leaves it
    return int(address)


def mapping_of(address: int) -> dict[str, str]:
    """The /proc/self/smaps fields of the mapping that holds `address`."""
    fields: dict[str, str] = {}
    inside = False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                start, end = (int(x, 16) for x in head.split("-"))
                if inside:
                    break
                inside = start <= address < end
            elif inside:
                name, _, value = line.partition(":")
                fields[name] = value.strip()
    return fields


def test_the_buffer_is_released_reads_as_zeros_and_takes_no_huge_pages() -> None:
    address, chunk = make_and_release(zeroed_buffer, lambda _: SIZE)
    try:
        assert chunk is not None
        start, end = chunk
        assert start <= address < address + SIZE <= end
        inside = address + SIZE // 2
        smaps = mapping_of(inside)
        rss_kb = int(smaps["Rss"].split()[0])
        assert rss_kb < 64, smaps["Rss"]  # of 65536 KB written, at most the edge pages
        assert "nh" in smaps["VmFlags"].split(), smaps["VmFlags"]
        assert ctypes.string_at(address, SIZE) == bytes(SIZE)
        # a write takes back one small page, not a huge one
        ctypes.memset(inside, 1, 1)
        assert int(mapping_of(inside)["Rss"].split()[0]) <= rss_kb + 4
    finally:
        libc.free(address)


def test_nothing_is_released_when_no_new_buffer_has_the_size() -> None:
    address, chunk = make_and_release(zeroed_buffer, lambda _: SIZE * 2)
    try:
        assert chunk is None
        assert int(mapping_of(address + SIZE // 2)["Rss"].split()[0]) >= SIZE >> 10
    finally:
        libc.free(address)
