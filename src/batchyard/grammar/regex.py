"""A JSON schema's `"pattern"` as GBNF rules for the JSON text inside a string's quotes.

The rules generate only strings whose decoded value fully matches the pattern, each written
the way `json.dumps(value, ensure_ascii=False)` writes it: `"` as `\\"`, `\\` as `\\\\`,
the controls as `\\b \\f \\n \\r \\t` or `\\u00xx`, every other character as itself. So what
the grammar lets through is always valid string content.

Choices that make the language a subset of the matches, which is always safe to generate:

- An unanchored pattern is treated as anchored (`^` at the very start and `$` at the very
  end are dropped): a string that fully matches also contains a match, which is what JSON
  Schema asks for.
- Where regex dialects disagree (ECMA-262 versus Python's `re`), only characters every
  dialect accepts are generated: `\\d` and `\\w` are ASCII, `.` leaves out line ends, and
  negations (`\\D`, `[^\\w]`) leave out every character some dialect counts in the set.

The subset is the one the hosted structured-outputs API accepts: literals, escapes, `.`,
classes, groups, alternation, greedy and lazy quantifiers (bounds up to 1000).
Backreferences, lookaround, word boundaries, inline flags and anchors elsewhere raise
`UnsupportedPattern`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

Ranges = tuple[tuple[int, int], ...]

MAX_REPEAT = 1000
_MAX_CP = 0x10FFFF
_SURROGATES: Ranges = ((0xD800, 0xDFFF),)
_RULE_NAME = re.compile(r"[a-zA-Z0-9-]+")
_BOUNDS = re.compile(r"\{(\d+)(,(\d*))?\}")


class UnsupportedPattern(ValueError):
    """The pattern uses a construct the grammar cannot express, or is not a valid regex."""


def _ranges(*pairs: tuple[int, int]) -> Ranges:
    """Sorted, merged, inclusive code-point ranges."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(pairs):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return tuple(merged)


def _minus(ranges: Ranges, cut: Ranges) -> Ranges:
    out: list[tuple[int, int]] = []
    for lo, hi in ranges:
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


_ANY = _minus(((0, _MAX_CP),), _SURROGATES)
_NON_ASCII: Ranges = ((0x80, _MAX_CP),)
_JSON_SPECIAL = _ranges((0x00, 0x1F), (0x22, 0x22), (0x5C, 0x5C))
# The characters JSON writes with a two-character escape, and how.
_JSON_SHORT = {
    ord(ch): "\\" + letter for ch, letter in zip('"\\\b\t\n\f\r', '"\\btnfr', strict=True)
}


@dataclass(frozen=True, slots=True)
class Chars:
    """One character of a set: `sure` holds those every dialect puts in the set (the only
    ones generated), `unsure` those only some do (kept out of the set's negation too)."""

    sure: Ranges
    unsure: Ranges = ()

    def negated(self) -> Chars:
        return Chars(_minus(_ANY, _ranges(*self.sure, *self.unsure)), self.unsure)

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
_EMPTY = Seq(())

_DIGIT = Chars(((0x30, 0x39),), _NON_ASCII)
_WORD = Chars(_ranges((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)), _NON_ASCII)
# Python's `re` also counts U+001C-U+001F and U+0085 as space; ECMA-262 also U+FEFF.
_SPACE_ELSEWHERE = _ranges(
    *((0x1C, 0x1F), (0x85, 0x85), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A)),
    *((0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000), (0xFEFF, 0xFEFF)),
)
_SPACE = Chars(_ranges((0x09, 0x0D), (0x20, 0x20)), _SPACE_ELSEWHERE)
# ECMA-262's `.` leaves out U+000D, U+2028 and U+2029 as well as U+000A.
_DOT = Chars(_minus(_ANY, _ranges((0x0A, 0x0A), (0x0D, 0x0D), (0x2028, 0x2029))))
_SHORTHANDS = {"d": _DIGIT, "w": _WORD, "s": _SPACE}
_QUANTIFIERS: dict[str, tuple[int, int | None]] = {"*": (0, None), "+": (1, None), "?": (0, 1)}
_SUFFIXES = {bounds: suffix for suffix, bounds in _QUANTIFIERS.items()}
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


class _Parser:
    """Recursive descent over the pattern, into the nodes above."""

    def __init__(self, pattern: str) -> None:
        self.src = pattern
        self.pos = 0

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
        if ch in _QUANTIFIERS:
            return *_QUANTIFIERS[ch], 1
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
        if self.peek() == "?":
            self.group_prefix()
        body = self.alternation()
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
        sure = _ranges(*(pair for member in members for pair in member.sure))
        unsure = _minus(_ranges(*(pair for member in members for pair in member.unsure)), sure)
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
        return Chars(_minus(((lo, hi),), _SURROGATES))

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
        return _EMPTY
    return item if (low, high) == (1, 1) else Repeat(item, low, high)


def _alt(options: list[Node]) -> Node | None:
    if not options:
        return None
    return options[0] if len(options) == 1 else Alt(tuple(options))


def _simplify(node: Node) -> Node:
    """Groups spliced into their sequence, and repeats of something that can be empty made
    to repeat only its non-empty part: a repetition that can go round without consuming a
    character is refused by llama.cpp as left recursion."""
    if isinstance(node, Chars):
        if not node.sure:
            raise UnsupportedPattern("a character class matches no character")
        return node
    if isinstance(node, Seq):
        items = [_simplify(item) for item in node.items]
        spliced = [
            part for item in items for part in (item.items if isinstance(item, Seq) else (item,))
        ]
        return spliced[0] if len(spliced) == 1 else Seq(tuple(spliced))
    if isinstance(node, Alt):
        return Alt(tuple(map(_simplify, node.options)))
    item, low = _simplify(node.item), node.low
    if _nullable(item):
        non_empty, low = _non_empty(item), 0
        if non_empty is None:
            return _EMPTY
        item = non_empty
    return _repeat(item, low, node.high)


def _json_char(cp: int) -> str:
    """How a character is written inside a JSON string."""
    if cp in _JSON_SHORT:
        return _JSON_SHORT[cp]
    return f"\\u{cp:04x}" if cp < 0x20 else chr(cp)


def _gbnf_char(cp: int) -> str:
    if cp > 0xFFFF:
        return f"\\U{cp:08X}"
    return f"\\u{cp:04X}" if cp > 0xFF else f"\\x{cp:02X}"


def _gbnf_literal(text: str) -> str:
    def one(ch: str) -> str:
        if ch in '"\\':
            return "\\" + ch
        return ch if " " <= ch <= "~" else _gbnf_char(ord(ch))

    return '"' + "".join(map(one, text)) + '"'


def _gbnf_class(ranges: Ranges, negate: bool = False) -> str:
    def one(cp: int) -> str:
        return chr(cp) if chr(cp).isascii() and chr(cp).isalnum() else _gbnf_char(cp)

    def span(lo: int, hi: int) -> str:
        if hi == lo:
            return one(lo)
        return one(lo) + ("" if hi == lo + 1 else "-") + one(hi)

    return ("[^" if negate else "[") + "".join(span(lo, hi) for lo, hi in ranges) + "]"


def _char_alternatives(sure: Ranges) -> list[str]:
    """GBNF alternatives, each the JSON spelling of some of the characters in `sure`."""
    plain = _minus(sure, _JSON_SPECIAL)
    alts: list[str] = []
    if len(plain) == 1 and plain[0][0] == plain[0][1]:
        alts.append(_gbnf_literal(chr(plain[0][0])))
    elif plain:
        positive = _gbnf_class(plain)
        negative = _gbnf_class(_minus(((0, _MAX_CP),), plain), negate=True)
        alts.append(min(positive, negative, key=len))
    special = [cp for lo, hi in _minus(sure, plain) for cp in range(lo, hi + 1)]
    alts += [_gbnf_literal(_json_char(cp)) for cp in special if cp in _JSON_SHORT]
    for high in (0, 1):  # the other controls as \u00xx: "\\u000" or "\\u001", then a hex digit
        lows = [cp & 0xF for cp in special if cp >> 4 == high and cp not in _JSON_SHORT]
        if lows:
            prefix = _gbnf_literal(f"\\u00{high}")
            digits = _ranges(*((ord(f"{low:x}"),) * 2 for low in lows))
            alts.append(f"{prefix} {_gbnf_class(digits)}")
    return alts


class _Emitter:
    def __init__(self, name: str) -> None:
        self.name = name
        self.rules: dict[str, str] = {}
        self.char_rules: dict[Ranges, str] = {}

    def expression(self, node: Node) -> str:
        if not isinstance(node, Alt):
            return self.sequence(node) or '""'
        options = [self.sequence(option) for option in node.options]
        filled = [option for option in options if option]
        if len(filled) == len(options):
            return " | ".join(filled)
        return f"({' | '.join(filled)})?" if filled else '""'

    def sequence(self, node: Node) -> str:
        """A GBNF sequence, "" for the empty one; runs of single characters as one literal."""
        parts: list[str] = []
        text = ""
        for item in node.items if isinstance(node, Seq) else (node,):
            cp = item.single() if isinstance(item, Chars) else None
            if cp is not None:
                text += _json_char(cp)
                continue
            if text:
                parts.append(_gbnf_literal(text))
                text = ""
            parts.append(self.atom(item))
        if text:
            parts.append(_gbnf_literal(text))
        return " ".join(parts)

    def atom(self, node: Node) -> str:
        """Something a suffix can follow."""
        if isinstance(node, Chars):
            return self.chars(node)
        if isinstance(node, Repeat):
            item = node.item
            inner = self.chars(item) if isinstance(item, Chars) else f"({self.expression(item)})"
            return inner + _suffix(node.low, node.high)
        return f"({self.expression(node)})"

    def chars(self, node: Chars) -> str:
        cp = node.single()
        if cp is not None:
            literal = _gbnf_literal(_json_char(cp))
            return literal if len(_json_char(cp)) == 1 else f"({literal})"
        alts = _char_alternatives(node.sure)
        if len(alts) == 1 and alts[0].startswith("["):
            return alts[0]
        if node.sure not in self.char_rules:
            rule = f"{self.name}-char{len(self.char_rules) + 1}"
            self.char_rules[node.sure] = rule
            self.rules[rule] = " | ".join(alts)
        return self.char_rules[node.sure]


def _suffix(low: int, high: int | None) -> str:
    if (low, high) in _SUFFIXES:
        return _SUFFIXES[low, high]
    if high == low:
        return f"{{{low}}}"
    return f"{{{low},{'' if high is None else high}}}"


def pattern_rules(pattern: str, name: str) -> dict[str, str]:
    """GBNF rules (rule name -> rule body) whose rule `name` generates the JSON string
    content (without the surrounding quotes) of strings that fully match `pattern`.

    Helper rules are named `name` + "-" + something. Raises UnsupportedPattern.
    """
    if not _RULE_NAME.fullmatch(name):
        raise ValueError(f"not a GBNF rule name: {name!r}")
    tree = _simplify(_Parser(pattern).parse())
    emitter = _Emitter(name)
    body = emitter.expression(tree)
    return {name: body, **emitter.rules}
