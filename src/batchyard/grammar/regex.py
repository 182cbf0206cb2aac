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

from batchyard.grammar.regex_parser import QUANTIFIERS, Parser
from batchyard.grammar.regex_tree import (
    MAX_CP,
    Alt,
    Chars,
    Node,
    Ranges,
    Repeat,
    Seq,
    minus,
    ranges,
    simplify,
)

_RULE_NAME = re.compile(r"[a-zA-Z0-9-]+")
_JSON_SPECIAL = ranges((0x00, 0x1F), (0x22, 0x22), (0x5C, 0x5C))
# The characters JSON writes with a two-character escape, and how.
_JSON_SHORT = {
    ord(ch): "\\" + letter for ch, letter in zip('"\\\b\t\n\f\r', '"\\btnfr', strict=True)
}
_SUFFIXES = {bounds: suffix for suffix, bounds in QUANTIFIERS.items()}


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
    plain = minus(sure, _JSON_SPECIAL)
    alts: list[str] = []
    if len(plain) == 1 and plain[0][0] == plain[0][1]:
        alts.append(_gbnf_literal(chr(plain[0][0])))
    elif plain:
        positive = _gbnf_class(plain)
        negative = _gbnf_class(minus(((0, MAX_CP),), plain), negate=True)
        alts.append(min(positive, negative, key=len))
    special = [cp for lo, hi in minus(sure, plain) for cp in range(lo, hi + 1)]
    alts += [_gbnf_literal(_json_char(cp)) for cp in special if cp in _JSON_SHORT]
    for high in (0, 1):  # the other controls as \u00xx: "\\u000" or "\\u001", then a hex digit
        lows = [cp & 0xF for cp in special if cp >> 4 == high and cp not in _JSON_SHORT]
        if lows:
            prefix = _gbnf_literal(f"\\u00{high}")
            digits = ranges(*((ord(f"{low:x}"),) * 2 for low in lows))
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
    tree = simplify(Parser(pattern).parse())
    emitter = _Emitter(name)
    body = emitter.expression(tree)
    return {name: body, **emitter.rules}
