"""`grammar/regex.py`: the language of the rules, checked with a small GBNF reader here.

Strings are sampled from the rules (repetitions bounded) and must be JSON string content
whose value fully matches the pattern; values that match must be accepted in the spelling
`json.dumps` gives them, values that don't must not be.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass

import pytest

from batchyard.grammar.regex import pattern_rules
from batchyard.grammar.regex_tree import UnsupportedPattern

# --- a GBNF reader: the subset of llama.cpp's grammar syntax the rules use -------------


@dataclass(frozen=True)
class Lit:
    text: str


@dataclass(frozen=True)
class Cls:
    ranges: tuple[tuple[int, int], ...]
    negated: bool

    def has(self, ch: str) -> bool:
        return any(lo <= ord(ch) <= hi for lo, hi in self.ranges) != self.negated


@dataclass(frozen=True)
class Ref:
    name: str


@dataclass(frozen=True)
class Cat:
    items: tuple[G, ...]


@dataclass(frozen=True)
class Either:
    options: tuple[G, ...]


@dataclass(frozen=True)
class Rep:
    item: G
    low: int
    high: int | None


G = Lit | Cls | Ref | Cat | Either | Rep
NAME = re.compile(r"[a-zA-Z0-9-]+")
BOUNDS = re.compile(r"\{(\d+)(,(\d*))?\}")
SIMPLE_ESCAPES = {"t": "\t", "r": "\r", "n": "\n", "\\": "\\", '"': '"', "[": "[", "]": "]"}


class Reader:
    """One rule body, read the way llama.cpp's grammar parser reads it."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def read(self) -> G:
        node = self.alternation()
        assert self.pos == len(self.text), f"trailing text at {self.pos} in {self.text!r}"
        return node

    def skip(self) -> str:
        while self.text[self.pos : self.pos + 1] == " ":
            self.pos += 1
        return self.text[self.pos : self.pos + 1]

    def alternation(self) -> G:
        options = [self.sequence()]
        while self.skip() == "|":
            self.pos += 1
            options.append(self.sequence())
        return options[0] if len(options) == 1 else Either(tuple(options))

    def sequence(self) -> G:
        items: list[G] = []
        while self.skip() not in ("", "|", ")"):
            items.append(self.suffixed(self.primary()))
        return Cat(tuple(items))

    def primary(self) -> G:
        ch = self.text[self.pos]
        if ch == '"':
            self.pos += 1
            chars = []
            while self.text[self.pos] != '"':
                chars.append(self.char())
            self.pos += 1
            return Lit("".join(chars))
        if ch == "[":
            return self.char_class()
        if ch == "(":
            self.pos += 1
            node = self.alternation()
            assert self.skip() == ")", f"missing ')' in {self.text!r}"
            self.pos += 1
            return node
        name = NAME.match(self.text, self.pos)
        assert name, f"unexpected {ch!r} at {self.pos} in {self.text!r}"
        self.pos = name.end()
        return Ref(name[0])

    def char_class(self) -> Cls:
        self.pos += 1
        negated = self.text[self.pos] == "^"
        self.pos += negated
        ranges = []
        while self.text[self.pos] != "]":
            lo = hi = ord(self.char())
            if self.text[self.pos] == "-" and self.text[self.pos + 1] != "]":
                self.pos += 1
                hi = ord(self.char())
            assert lo <= hi, f"reversed range in {self.text!r}"
            ranges.append((lo, hi))
        self.pos += 1
        return Cls(tuple(ranges), negated)

    def char(self) -> str:
        ch = self.text[self.pos]
        assert ch >= " ", f"raw control character in {self.text!r}"
        if ch != "\\":
            self.pos += 1
            return ch
        kind = self.text[self.pos + 1]
        if kind in SIMPLE_ESCAPES:
            self.pos += 2
            return SIMPLE_ESCAPES[kind]
        width = {"x": 2, "u": 4, "U": 8}[kind]
        digits = self.text[self.pos + 2 : self.pos + 2 + width]
        assert re.fullmatch(r"[0-9a-fA-F]+", digits) and len(digits) == width, digits
        self.pos += 2 + width
        return chr(int(digits, 16))

    def suffixed(self, node: G) -> G:
        ch = self.text[self.pos : self.pos + 1]
        if ch in ("*", "+", "?"):
            self.pos += 1
            low, high = {"*": (0, None), "+": (1, None), "?": (0, 1)}[ch]
            return Rep(node, low, high)
        bounds = BOUNDS.match(self.text, self.pos)
        if bounds is None:
            return node
        self.pos = bounds.end()
        low = int(bounds[1])
        high = low if bounds[2] is None else int(bounds[3]) if bounds[3] else None
        return Rep(node, low, high)


def read_rules(rules: dict[str, str], name: str) -> dict[str, G]:
    """The rules read, after checking their names and that every reference is defined."""
    assert name in rules
    for rule in rules:
        assert NAME.fullmatch(rule), rule
        assert rule == name or rule.startswith(name + "-"), rule
    grammar = {rule: Reader(body).read() for rule, body in rules.items()}
    for node in grammar.values():
        for ref in refs(node):
            assert ref in grammar, f"undefined rule {ref}"
    return grammar


def refs(node: G) -> list[str]:
    if isinstance(node, Ref):
        return [node.name]
    if isinstance(node, Cat):
        return [r for item in node.items for r in refs(item)]
    if isinstance(node, Either):
        return [r for option in node.options for r in refs(option)]
    if isinstance(node, Rep):
        return refs(node.item)
    return []


def can_be_empty(node: G, grammar: dict[str, G]) -> bool:
    if isinstance(node, Lit):
        return not node.text
    if isinstance(node, Cls):
        return False
    if isinstance(node, Ref):
        return can_be_empty(grammar[node.name], grammar)
    if isinstance(node, Cat):
        return all(can_be_empty(item, grammar) for item in node.items)
    if isinstance(node, Either):
        return any(can_be_empty(option, grammar) for option in node.options)
    return node.low == 0 or can_be_empty(node.item, grammar)


def reps(node: G) -> list[Rep]:
    if isinstance(node, Cat):
        return [r for item in node.items for r in reps(item)]
    if isinstance(node, Either):
        return [r for option in node.options for r in reps(option)]
    if isinstance(node, Rep):
        return [node, *reps(node.item)]
    return []


# Characters a class is tried on: JSON's specials, every ASCII one, and some beyond.
POOL = [chr(c) for c in range(0x80)] + list(
    "\x85\xa0\xe9\xff\u0663\u1680\u2028\u2029\u3000\u4e2d\ufeff\U0001f600"
)


def sample(node: G, grammar: dict[str, G], rng: random.Random) -> str:
    """One string of the node's language, with at most 3 repeats beyond the minimum."""
    if isinstance(node, Lit):
        return node.text
    if isinstance(node, Cls):
        fits = [ch for ch in POOL if node.has(ch)]
        if not node.negated:
            fits += [chr(end) for pair in node.ranges for end in pair]
        return rng.choice(fits)
    if isinstance(node, Ref):
        return sample(grammar[node.name], grammar, rng)
    if isinstance(node, Cat):
        return "".join(sample(item, grammar, rng) for item in node.items)
    if isinstance(node, Either):
        return sample(rng.choice(node.options), grammar, rng)
    top = node.low + 3 if node.high is None else min(node.high, node.low + 3)
    return "".join(sample(node.item, grammar, rng) for _ in range(rng.randint(node.low, top)))


def ends(node: G, grammar: dict[str, G], text: str, start: int) -> set[int]:
    """Every position where a match of the node starting at `start` can end."""
    if isinstance(node, Lit):
        return {start + len(node.text)} if text.startswith(node.text, start) else set()
    if isinstance(node, Cls):
        return {start + 1} if start < len(text) and node.has(text[start]) else set()
    if isinstance(node, Ref):
        return ends(grammar[node.name], grammar, text, start)
    if isinstance(node, Cat):
        positions = {start}
        for item in node.items:
            positions = {e for p in positions for e in ends(item, grammar, text, p)}
        return positions
    if isinstance(node, Either):
        return {e for option in node.options for e in ends(option, grammar, text, start)}
    found = {start} if node.low == 0 else set()
    frontier = {start}
    for count in range(1, (len(text) + 1 if node.high is None else node.high) + 1):
        frontier = {e for p in frontier for e in ends(node.item, grammar, text, p)}
        if count >= node.low:
            found |= frontier
        if not frontier:
            break
    return found


def accepts(grammar: dict[str, G], name: str, content: str) -> bool:
    return len(content) in ends(Ref(name), grammar, content, 0)


def spelling(value: str) -> str:
    """A value as JSON string content, the way the grammar spells it."""
    return json.dumps(value, ensure_ascii=False)[1:-1]


# --- the tests -------------------------------------------------------------------------

PATTERNS = [
    r"^[A-Z]{3}-\d{4}$",
    r"^(cat|dog)s?$",
    r"[a-z]+@[a-z]+\.com",
    r"^\d{3}(-\d{2})?$",
    r'^"quoted"$',
    r"^a\\b$",
    r'^[^"]{1,5}$',
    r"^.{2}$",
    r"^\w+\s\w+$",
    r"(?:ab)+",
    r"\S+",
    r"\D\W",
    r"[^\w\s]{2}",
    r"[\x00-\x1f]{1,3}",
    r'[^"\\]{3}',
    r"[\]\-\\/]+",
    r"\/\\\.\-\t\n\r\f\v\0[\b]",
    "\\u00e9+[\\u4e00-\\u4e10]\U0001f600?",
    "[\U0001f600-\U0001f64f]{2}",
    r"(a*)*b",
    r"(a|)+b",
    r"(a?b?)*c",
    r"x{0}y{2,}z{1,3}?",
    r"a+?b*?c??",
    r"a|b|",
    r"^$",
    r"(?P<year>\d{4})-(?P<month>0[1-9]|1[0-2])",
    r"(ab|c){0,1000}",
    r"[.^$|()*+?{}]",
]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_sampled_strings_are_json_content_that_fully_matches(pattern: str) -> None:
    grammar = read_rules(pattern_rules(pattern, "p"), "p")
    rng = random.Random(pattern)
    for _ in range(200):
        content = sample(Ref("p"), grammar, rng)
        value = json.loads('"' + content + '"')
        assert re.fullmatch(pattern, value), (content, value)
        assert content == spelling(value)
        assert accepts(grammar, "p", content)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_no_repetition_can_go_round_empty(pattern: str) -> None:
    """llama.cpp loops (or refuses the grammar) on a repeat of something nullable."""
    grammar = read_rules(pattern_rules(pattern, "p"), "p")
    for body in grammar.values():
        for rep in reps(body):
            assert not can_be_empty(rep.item, grammar), pattern


MATCHES = [
    (r"^[A-Z]{3}-\d{4}$", ["ABC-1234", "ZZZ-0000"], ["AB-1234", "abc-1234", "ABC-12345"]),
    (r"^(cat|dog)s?$", ["cat", "dogs"], ["cow", "catss", ""]),
    (r"[a-z]+@[a-z]+\.com", ["a@b.com"], ["a@b.org", "@b.com", "a@b.com "]),
    (r"^\d{3}(-\d{2})?$", ["123", "123-45"], ["123-4", "12"]),
    (r'^"quoted"$', ['"quoted"'], ["quoted"]),
    (r"^a\\b$", ["a\\b"], ["ab", "a\\\\b"]),
    (r'^[^"]{1,5}$', ["a", "\\\\", "\n\t\x01", "\xe9\U0001f600"], ['"', "", "abcdef"]),
    (r"^.{2}$", ["ab", '"\\', "\t\x7f"], ["a\n", "abc"]),
    (r"^\w+\s\w+$", ["hello world", "a\tb"], ["hello  world", "a-b c"]),
    (r"(?:ab)+", ["ab", "ababab"], ["", "aba"]),
    (r"(a*)*b", ["b", "aaab"], ["a"]),
    (r"a|b|", ["", "a", "b"], ["ab"]),
    (r"x{0}y{2,}z{1,3}?", ["yyz", "yyyyzzz"], ["xyyz", "yz", "yyzzzz"]),
    (r"(ab|c){0,1000}", ["", "cab" * 300], ["cab" * 300 + "a"]),
    # Negations leave out what any dialect counts in the set: Python's `re` has Unicode
    # digits, letters and more spaces.
    (r"\D", ["a", '"'], ["1", "\u0663"]),
    (r"\W", ["-", "\n"], ["_", "\u00e9", "\u4e2d"]),
    (r"\S", ["a", "\u00e9"], [" ", "\x1c", "\x85", "\u00a0", "\u2028", "\u3000"]),
    (r"[^\d\s]", ["a"], ["1", "\u0663", "\t", "\u2029"]),
]


@pytest.mark.parametrize(("pattern", "good", "bad"), MATCHES)
def test_matches_are_accepted_and_others_are_not(
    pattern: str, good: list[str], bad: list[str]
) -> None:
    grammar = read_rules(pattern_rules(pattern, "p"), "p")
    for value in good:
        assert re.fullmatch(pattern, value)
        assert accepts(grammar, "p", spelling(value)), value
    for value in bad:
        assert not re.fullmatch(pattern, value)
        assert not accepts(grammar, "p", spelling(value)), value


@pytest.mark.parametrize("pattern", [r"\D", r"\W", r"[^\d]", r"[^\w]"])
def test_digit_and_word_negations_stay_in_ascii(pattern: str) -> None:
    """Which non-ASCII characters are digits or letters differs by dialect."""
    grammar = read_rules(pattern_rules(pattern, "p"), "p")
    assert re.fullmatch(pattern, "\u2013")
    assert not accepts(grammar, "p", spelling("\u2013"))
    assert accepts(grammar, "p", spelling("~"))


def test_dot_leaves_out_every_dialects_line_ends() -> None:
    grammar = read_rules(pattern_rules(r".", "p"), "p")
    for value in ("\n", "\r", "\u2028", "\u2029"):
        assert not accepts(grammar, "p", spelling(value)), repr(value)
    for value in ("\t", "\x00", "\x85", "\U0001f600"):
        assert accepts(grammar, "p", spelling(value)), repr(value)


def test_raw_json_specials_are_never_accepted() -> None:
    grammar = read_rules(pattern_rules(r"^[^a]{1,3}$", "p"), "p")
    for raw in ('"', "\\", "\n", "\x00", "\x1f"):
        assert not accepts(grammar, "p", raw), repr(raw)
    for escaped in ('\\"', "\\\\", "\\n", "\\u0000", "\\u001f"):
        assert accepts(grammar, "p", escaped), escaped


@pytest.mark.parametrize(
    ("pattern", "rules"),
    [
        (r"^[A-Z]{3}-\d{4}$", {"p": '[A-Z]{3} "-" [0-9]{4}'}),
        (r"^(cat|dog)s?$", {"p": '("cat" | "dog") "s"?'}),
        (r'^"quoted"$', {"p": r'"\\\"quoted\\\""'}),
        (r"^a\\b$", {"p": r'"a\\\\b"'}),
        (r"(a|)+b", {"p": '"a"* "b"'}),
        (r"^$", {"p": '""'}),
        (r"\s", {"p": "p-char1", "p-char1": r'" " | "\\t" | "\\n" | "\\f" | "\\r" | "\\u000" [b]'}),
    ],
)
def test_rules_read_plainly(pattern: str, rules: dict[str, str]) -> None:
    assert pattern_rules(pattern, "p") == rules


def test_a_character_set_used_twice_is_one_rule() -> None:
    rules = pattern_rules(r"[^a]-[^a]", "s-1")
    assert rules["s-1"] == 's-1-char1 "-" s-1-char1'
    assert list(rules) == ["s-1", "s-1-char1"]


def test_named_groups_are_plain_groups() -> None:
    plain = pattern_rules(r"(\d{4})-(\d\d)", "p")
    assert pattern_rules(r"(?<y>\d{4})-(?P<m>\d\d)", "p") == plain


def test_unanchored_is_anchored() -> None:
    assert pattern_rules(r"ab+", "p") == pattern_rules(r"^ab+$", "p")


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        (r"(a)\1", "backreference"),
        (r"(?P<x>a)(?P=x)", "backreference (?P=name)"),
        (r"(?<x>a)\k<x>", "backreference \\k<name>"),
        (r"a(?=b)", "lookahead (?=...) is not supported"),
        (r"a(?!b)", "negative lookahead (?!...) is not supported"),
        (r"(?<=a)b", "lookbehind (?<=...) is not supported"),
        (r"(?<!a)b", "negative lookbehind (?<!...) is not supported"),
        (r"\bword\b", "word boundary \\b"),
        (r"a\Bb", "word boundary \\B"),
        (r"a^b", "anchor '^'"),
        (r"a$b", "anchor '$'"),
        (r"^a|^b", "anchor '^'"),
        (r"(^a)", "anchor '^'"),
        (r"a{1,1001}", "over the limit of 1000"),
        (r"a{1001}", "over the limit of 1000"),
        (r"a{3,2}", "wrong order"),
        (r"a{,3}", "'{' must be a quantifier"),
        (r"a{", "'{' must be a quantifier"),
        (r"(ab", "missing ')'"),
        (r"ab)", "unbalanced ')'"),
        (r"[ab", "unterminated character class"),
        (r"[]a]", "escape it"),
        (r"[z-a]", "wrong order"),
        (r"[\d-z]", "single character at each end"),
        (r"*a", "nothing to repeat"),
        (r"a|+", "nothing to repeat"),
        (r"a**", "multiple repeat"),
        (r"a++", "possessive"),
        ("ab\\", "lone backslash"),
        (r"(?i)abc", "group syntax"),
        (r"(?>a)", "group syntax"),
        (r"\p{L}", "Unicode property escape"),
        (r"\e", "unknown escape \\e"),
        (r"\x4", "exactly 2 hex digits"),
        (r"\u12", "exactly 4 hex digits"),
        (r"\ud83d\ude00", "surrogate"),
        (r"\A", "anchor \\A"),
        (r"[^\s\S]", "matches no character"),
    ],
)
def test_refusals(pattern: str, message: str) -> None:
    with pytest.raises(UnsupportedPattern) as caught:
        pattern_rules(pattern, "p")
    assert message in str(caught.value)


def test_refusals_are_value_errors_and_bad_names_too() -> None:
    assert issubclass(UnsupportedPattern, ValueError)
    with pytest.raises(ValueError, match="rule name"):
        pattern_rules("a", "bad name")
