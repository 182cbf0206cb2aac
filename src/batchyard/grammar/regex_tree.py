"""A pattern as a tree of character sets, sequences, alternatives and repeats, made fit for GBNF."""

from __future__ import annotations

from dataclasses import dataclass

Ranges = tuple[tuple[int, int], ...]

MAX_CP = 0x10FFFF
SURROGATES: Ranges = ((0xD800, 0xDFFF),)


class UnsupportedPattern(ValueError):
    """The pattern uses a construct the grammar cannot express, or is not a valid regex."""


def ranges(*pairs: tuple[int, int]) -> Ranges:
    """Sorted, merged, inclusive code-point ranges."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(pairs):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return tuple(merged)


def minus(spans: Ranges, cut: Ranges) -> Ranges:
    """`spans` without the code points in `cut` (both sorted and merged)."""
    out: list[tuple[int, int]] = []
    for lo, hi in spans:
        for c_lo, c_hi in cut:
            if c_hi < lo or c_lo > hi:
                continue
            if c_lo > lo:
                out.append((lo, c_lo - 1))
            lo = c_hi + 1
            if lo > hi:
                break
        if lo <= hi:
            out.append((lo, hi))
    return tuple(out)


ANY = minus(((0, MAX_CP),), SURROGATES)


@dataclass(frozen=True, slots=True)
class Chars:
    """One character of a set: `sure` holds those every dialect puts in the set (the only
    ones generated), `unsure` those only some do (kept out of the set's negation too)."""

    sure: Ranges
    unsure: Ranges = ()

    def negated(self) -> Chars:
        return Chars(minus(ANY, ranges(*self.sure, *self.unsure)), self.unsure)

    def single(self) -> int | None:
        if len(self.sure) == 1 and self.sure[0][0] == self.sure[0][1] and not self.unsure:
            return self.sure[0][0]
        return None


@dataclass(frozen=True, slots=True)
class Seq:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Alt:
    options: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Repeat:
    item: Node
    low: int
    high: int | None


Node = Chars | Seq | Alt | Repeat
EMPTY = Seq(())


def _nullable(node: Node) -> bool:
    if isinstance(node, Chars):
        return False
    if isinstance(node, Seq):
        return all(_nullable(item) for item in node.items)
    if isinstance(node, Alt):
        return any(_nullable(option) for option in node.options)
    return node.low == 0 or _nullable(node.item)


def _non_empty(node: Node) -> Node | None:
    """The node's language without the empty string (None when nothing is left)."""
    if not _nullable(node):
        return node
    if isinstance(node, Seq):  # every item nullable: ab - {""} = (a - {""}) b | (b - {""})
        tails = [(_non_empty(item), node.items[i + 1 :]) for i, item in enumerate(node.items)]
        options: list[Node] = [Seq((head, *rest)) for head, rest in tails if head is not None]
        return _alt(options)
    if isinstance(node, Alt):
        return _alt([o for o in map(_non_empty, node.options) if o is not None])
    assert isinstance(node, Repeat)  # Chars are never nullable
    item = _non_empty(node.item)
    if item is None or node.high == 0:
        return None
    return _repeat(item, 1, node.high)


def _repeat(item: Node, low: int, high: int | None) -> Node:
    if high == 0:
        return EMPTY
    return item if (low, high) == (1, 1) else Repeat(item, low, high)


def _alt(options: list[Node]) -> Node | None:
    if not options:
        return None
    return options[0] if len(options) == 1 else Alt(tuple(options))


def simplify(node: Node) -> Node:
    """Groups spliced into their sequence, and repeats of something that can be empty made
    to repeat only its non-empty part: a repetition that can go round without consuming a
    character is refused by llama.cpp as left recursion."""
    if isinstance(node, Chars):
        if not node.sure:
            raise UnsupportedPattern("a character class matches no character")
        return node
    if isinstance(node, Seq):
        items = [simplify(item) for item in node.items]
        spliced = [
            part for item in items for part in (item.items if isinstance(item, Seq) else (item,))
        ]
        return spliced[0] if len(spliced) == 1 else Seq(tuple(spliced))
    if isinstance(node, Alt):
        return Alt(tuple(map(simplify, node.options)))
    item, low = simplify(node.item), node.low
    if _nullable(item):
        non_empty, low = _non_empty(item), 0
        if non_empty is None:
            return EMPTY
        item = non_empty
    return _repeat(item, low, node.high)
