"""Patterns parsed into `regex_tree` nodes, reading each construct the way every dialect does."""

from __future__ import annotations

import re

from batchyard.grammar.regex_tree import (
    ANY,
    MAX_CP,
    SURROGATES,
    Alt,
    Chars,
    Node,
    Ranges,
    Repeat,
    Seq,
    UnsupportedPattern,
    minus,
    ranges,
)

MAX_REPEAT = 1000
MAX_GROUP_DEPTH = 32
"""Groups inside groups (the parser and the grammar writer recurse once a level)."""
_BOUNDS = re.compile(r"\{(\d+)(,(\d*))?\}")
_NON_ASCII: Ranges = ((0x80, MAX_CP),)

_DIGIT = Chars(((0x30, 0x39),), _NON_ASCII)
_WORD = Chars(ranges((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)), _NON_ASCII)
# Python's `re` also counts U+001C-U+001F and U+0085 as space; ECMA-262 also U+FEFF.
_SPACE_ELSEWHERE = ranges(
    *((0x1C, 0x1F), (0x85, 0x85), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A)),
    *((0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000), (0xFEFF, 0xFEFF)),
)
_SPACE = Chars(ranges((0x09, 0x0D), (0x20, 0x20)), _SPACE_ELSEWHERE)
# ECMA-262's `.` leaves out U+000D, U+2028 and U+2029 as well as U+000A.
_DOT = Chars(minus(ANY, ranges((0x0A, 0x0A), (0x0D, 0x0D), (0x2028, 0x2029))))
_SHORTHANDS = {"d": _DIGIT, "w": _WORD, "s": _SPACE}
QUANTIFIERS: dict[str, tuple[int, int | None]] = {"*": (0, None), "+": (1, None), "?": (0, 1)}
_CONTROL_ESCAPES = {"t": 0x09, "n": 0x0A, "v": 0x0B, "f": 0x0C, "r": 0x0D}
_REFUSED_ESCAPES = {
    "b": "word boundary \\b",
    "B": "word boundary \\B",
    "A": "anchor \\A",
    "Z": "anchor \\Z",
    "z": "anchor \\z",
    "G": "anchor \\G",
    "k": "backreference \\k<name>",
    "p": "Unicode property escape \\p{...}",
    "P": "Unicode property escape \\P{...}",
    "c": "control escape \\cX",
}
_REFUSED_GROUPS = {
    "?=": "lookahead (?=...)",
    "?!": "negative lookahead (?!...)",
    "?<=": "lookbehind (?<=...)",
    "?<!": "negative lookbehind (?<!...)",
    "?P=": "backreference (?P=name)",
}


class Parser:
    """Recursive descent over the pattern, into `regex_tree` nodes."""

    def __init__(self, pattern: str) -> None:
        self.src = pattern
        self.pos = 0
        self.depth = 0

    def fail(self, message: str, pos: int | None = None) -> UnsupportedPattern:
        at = self.pos if pos is None else pos
        return UnsupportedPattern(f"{message}, at position {at} of pattern {self.src!r}")

    def peek(self, ahead: int = 0) -> str:
        i = self.pos + ahead
        return self.src[i] if i < len(self.src) else ""

    def take(self) -> str:
        ch = self.peek()
        if not ch:
            raise self.fail("the pattern ends too early")
        self.pos += 1
        return ch

    def parse(self) -> Node:
        node = self.alternation()
        if self.pos < len(self.src):
            raise self.fail("unbalanced ')'")
        return node

    def alternation(self) -> Node:
        options = [self.sequence()]
        while self.peek() == "|":
            self.pos += 1
            options.append(self.sequence())
        return options[0] if len(options) == 1 else Alt(tuple(options))

    def sequence(self) -> Node:
        items: list[Node] = []
        while self.peek() not in ("", "|", ")"):
            if self.anchor():
                continue
            if self.quantifier() is not None:
                raise self.fail("nothing to repeat before the quantifier")
            items.append(self.quantified(self.atom()))
        return items[0] if len(items) == 1 else Seq(tuple(items))

    def anchor(self) -> bool:
        ch = self.peek()
        if ch not in ("^", "$"):
            return False
        if (ch == "^" and self.pos != 0) or (ch == "$" and self.pos != len(self.src) - 1):
            raise self.fail(f"anchor {ch!r} is only supported at the very start or end")
        self.pos += 1
        return True

    def quantifier(self) -> tuple[int, int | None, int] | None:
        """The quantifier at the current position as (low, high, length), or None."""
        ch = self.peek()
        if ch in QUANTIFIERS:
            return *QUANTIFIERS[ch], 1
        if ch != "{":
            return None
        bounds = _BOUNDS.match(self.src, self.pos)
        if bounds is None:
            raise self.fail("'{' must be a quantifier {n}, {n,} or {n,m}; escape a literal one")
        low = int(bounds[1])
        high = low if bounds[2] is None else int(bounds[3]) if bounds[3] else None
        if high is not None and high < low:
            raise self.fail(f"quantifier {bounds[0]} has its bounds in the wrong order")
        if max(low, high or 0) > MAX_REPEAT:
            raise self.fail(f"quantifier {bounds[0]} is over the limit of {MAX_REPEAT}")
        return low, high, len(bounds[0])

    def quantified(self, atom: Node) -> Node:
        quantifier = self.quantifier()
        if quantifier is None:
            return atom
        low, high, length = quantifier
        self.pos += length
        if self.peek() == "?":  # lazy: the same language
            self.pos += 1
        elif self.peek() == "+":
            raise self.fail("possessive quantifiers are not supported")
        if self.quantifier() is not None:
            raise self.fail("multiple repeat")
        return Repeat(atom, low, high)

    def atom(self) -> Node:
        ch = self.peek()
        if ch == "(":
            return self.group()
        if ch == "[":
            return self.char_class()
        if ch == ".":
            self.pos += 1
            return _DOT
        if ch == "\\":
            return self.escape(in_class=False)
        self.pos += 1
        return self.literal(ord(ch))

    def literal(self, cp: int) -> Chars:
        if 0xD800 <= cp <= 0xDFFF:
            raise self.fail("surrogate code points are not supported; write the character")
        return Chars(((cp, cp),))

    def group(self) -> Node:
        start = self.pos
        self.pos += 1
        if self.depth >= MAX_GROUP_DEPTH:
            raise self.fail(f"groups nest deeper than {MAX_GROUP_DEPTH} levels", start)
        if self.peek() == "?":
            self.group_prefix()
        self.depth += 1
        body = self.alternation()
        self.depth -= 1
        if self.peek() != ")":
            raise self.fail("missing ')' for the group opened here", start)
        self.pos += 1
        return body

    def group_prefix(self) -> None:
        rest = self.src[self.pos :]
        for prefix, what in _REFUSED_GROUPS.items():
            if rest.startswith(prefix):
                raise self.fail(f"{what} is not supported")
        if rest.startswith("?:"):
            self.pos += 2
            return
        named = re.match(r"\?P?<([A-Za-z_]\w*)>", rest)
        if named is None:
            raise self.fail(
                "group syntax (?...) other than (?:...) and named groups is not supported"
            )
        self.pos += named.end()

    def char_class(self) -> Chars:
        start = self.pos
        self.pos += 1
        negate = self.peek() == "^"
        self.pos += negate
        if self.peek() == "]":
            raise self.fail("a ']' first in a class reads differently by dialect; escape it")
        members: list[Chars] = []
        while self.peek() != "]":
            if not self.peek():
                raise self.fail("unterminated character class", start)
            members.append(self.class_member())
        self.pos += 1
        sure = ranges(*(pair for member in members for pair in member.sure))
        unsure = minus(ranges(*(pair for member in members for pair in member.unsure)), sure)
        return Chars(sure, unsure).negated() if negate else Chars(sure, unsure)

    def class_member(self) -> Chars:
        first = self.class_atom()
        if self.peek() != "-" or self.peek(1) in ("]", ""):
            return first
        self.pos += 1
        last = self.class_atom()
        lo, hi = first.single(), last.single()
        if lo is None or hi is None:
            raise self.fail("a class range needs a single character at each end")
        if lo > hi:
            raise self.fail("a class range has its ends in the wrong order")
        return Chars(minus(((lo, hi),), SURROGATES))

    def class_atom(self) -> Chars:
        if self.peek() == "\\":
            return self.escape(in_class=True)
        return self.literal(ord(self.take()))

    def escape(self, *, in_class: bool) -> Chars:
        self.pos += 1
        if not self.peek():
            raise self.fail("the pattern ends with a lone backslash")
        ch = self.take()
        if ch.lower() in _SHORTHANDS:
            chars = _SHORTHANDS[ch.lower()]
            return chars.negated() if ch.isupper() else chars
        if ch in _CONTROL_ESCAPES:
            return self.literal(_CONTROL_ESCAPES[ch])
        if ch == "b" and in_class:
            return self.literal(0x08)
        if ch in ("x", "u"):
            return self.literal(self.hex_digits(2 if ch == "x" else 4))
        if ch == "0" and not self.peek().isdigit():
            return self.literal(0)
        if ch.isdigit():
            raise self.fail(f"backreference or octal escape \\{ch} is not supported")
        if ch in _REFUSED_ESCAPES:
            raise self.fail(f"{_REFUSED_ESCAPES[ch]} is not supported")
        if ch.isascii() and ch.isalpha():
            raise self.fail(f"unknown escape \\{ch}")
        return self.literal(ord(ch))

    def hex_digits(self, count: int) -> int:
        digits = self.src[self.pos : self.pos + count]
        if len(digits) != count or not all(d in "0123456789abcdefABCDEF" for d in digits):
            raise self.fail(f"a hex escape needs exactly {count} hex digits")
        self.pos += count
        return int(digits, 16)
