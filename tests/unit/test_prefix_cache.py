"""The prefix index of the embedded engine, without a model."""

from __future__ import annotations

from batchyard.engines.local.prefix_cache import PrefixCache, block_hashes, common_prefix


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def tokens(n: int, start: int = 0) -> list[int]:
    return list(range(start, start + n))


def test_common_prefix() -> None:
    assert common_prefix([1, 2, 3], [1, 2, 3]) == 3
    assert common_prefix([1, 2, 3], [1, 2]) == 2
    assert common_prefix([1, 2, 3, 4, 5], [1, 2, 9, 4, 5]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix([7], [8]) == 0
    a = list(range(1000))
    for cut in (0, 1, 499, 998, 999):
        b = [*a[:cut], -1, *a[cut + 1 :]]
        assert common_prefix(a, b) == cut
        assert common_prefix(a, b, start=cut) == cut


def test_block_hashes_chain_whole_blocks_only() -> None:
    assert len(block_hashes(tokens(47), 16)) == 2
    a, b = block_hashes(tokens(32), 16), block_hashes([*tokens(16), *tokens(16, 100)], 16)
    assert a[0] == b[0] and a[1] != b[1]
    # a block's hash depends on what came before it
    assert block_hashes([*tokens(16, 5), *tokens(16)], 16)[1] != a[0]


def test_longest_match_extends_inside_the_last_block() -> None:
    cache = PrefixCache(1 << 20, block=16)
    system = tokens(100)
    cache.add([*system, *tokens(20, 500)], "a", 10)
    cache.add([*system, *tokens(30, 900)], "b", 10)
    entry, n = cache.longest([*system, *tokens(25, 900), 1, 2])
    assert entry is not None and entry.blob == "b" and n == 125
    entry, n = cache.longest([*system, 7, 7, 7])
    assert entry is not None and n == 100
    # nothing shared in the first block: no match, and a prompt shorter than a block never hits
    assert cache.longest([5, *system]) == (None, 0)
    assert cache.longest(tokens(10)) == (None, 0)
    assert cache.stats.hits == 2


def test_only_the_same_tokens_from_the_start_hit() -> None:
    cache = PrefixCache(1 << 20, block=16)
    cache.add(tokens(64), "a", 10)
    # the same tokens shifted by one position are another prefix
    assert cache.longest([0, *tokens(64)]) == (None, 0)
    assert cache.longest(tokens(64, 1)) == (None, 0)


def test_covers_and_adding_what_is_held() -> None:
    cache = PrefixCache(1 << 20, block=16)
    first = cache.add(tokens(64), "a", 10)
    assert cache.covers(tokens(40)) is first
    assert cache.covers(tokens(65)) is None
    assert cache.add(tokens(40), "b", 10) is first  # held already: not stored twice
    assert len(cache) == 1 and cache.used_bytes == 10


def test_least_recently_used_goes_first_within_the_budget() -> None:
    clock = Clock()
    cache = PrefixCache(100, block=16, clock=clock)
    for k in range(3):
        clock.now += 1
        cache.add(tokens(32, 1000 * k), k, 40)
    assert len(cache) == 2 and cache.used_bytes == 80
    assert cache.longest(tokens(32, 0)) == (None, 0)  # the oldest was evicted
    clock.now += 1
    cache.longest(tokens(32, 1000))  # touch entry 1
    clock.now += 1
    cache.add(tokens(32, 3000), 3, 40)
    assert sorted(str(e.blob) for e in cache.entries()) == ["1", "3"]
    assert cache.stats.evicted == 2
    # larger than the whole budget: not kept, nothing evicted for it
    assert cache.add(tokens(32, 5000), 5, 101) is None
    assert len(cache) == 2


def test_pinned_entries_go_after_every_unpinned_one_and_expire() -> None:
    clock = Clock()
    cache = PrefixCache(100, block=16, clock=clock)
    pinned = cache.add(tokens(32), "pinned", 40, keep_for=300)
    clock.now += 1
    cache.add(tokens(32, 1000), "recent", 40)
    clock.now += 1
    cache.add(tokens(32, 2000), "newer", 40)
    assert sorted(str(e.blob) for e in cache.entries()) == ["newer", "pinned"]
    clock.now += 301  # the ttl is over: now it is the least recently used
    cache.add(tokens(32, 3000), "newest", 40)
    assert pinned not in cache.entries()
    assert sorted(str(e.blob) for e in cache.entries()) == ["newer", "newest"]


def test_clear_empties_the_index() -> None:
    cache = PrefixCache(1000, block=16)
    cache.add(tokens(32), "a", 10)
    cache.clear()
    assert len(cache) == 0 and cache.used_bytes == 0
    assert cache.longest(tokens(32)) == (None, 0)
