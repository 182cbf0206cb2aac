"""The fixed GBNF rules every schema grammar may use: JSON values, bounded whitespace,
and the text of each supported string format (each a subset of what the `jsonschema`
format checker accepts, so a finished value always passes it)."""

from __future__ import annotations

FORMATS: dict[str, str] = {
    "date": "date",
    "time": "time",
    "date-time": 'date "T" time',
    "duration": "duration",
    "email": "email",
    "hostname": "hostname",
    "uri": "uri",
    "ipv4": "ipv4",
    "ipv6": "ipv6",
    "uuid": "uuid",
}
"""Supported string formats → the GBNF (of `BASE_RULES`) of a value's text."""

BASE_RULES = r"""
ws ::= | " " | "\n" [ \t]{0,20}
char ::= [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})
string ::= "\"" char* "\""
integer ::= "-"? ("0" | [1-9] [0-9]{0,15})
number ::= integer ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})?
boolean ::= "true" | "false"
null ::= "null"
json-value ::= json-object | json-array | string | number | boolean | null
json-object ::= "{" ws (string ws ":" ws json-value ws ("," ws string ws ":" ws json-value ws)*)? "}"
json-array ::= "[" ws (json-value ws ("," ws json-value ws)*)? "]"
d2 ::= [0-9] [0-9]
date ::= [0-9]{4} "-" (("0" [13578] | "1" [02]) "-" ("0" [1-9] | [12] [0-9] | "3" [01]) | ("0" [469] | "11") "-" ("0" [1-9] | [12] [0-9] | "30") | "02-" ("0" [1-9] | "1" [0-9] | "2" [0-8]))
time ::= ([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ("." [0-9]{1,6})? ("Z" | [+-] ([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9])
count ::= [0-9]{1,6}
duration ::= "P" (duration-date ("T" duration-time)? | "T" duration-time | count "W")
duration-date ::= count "Y" (count "M")? (count "D")? | count "M" (count "D")? | count "D"
duration-time ::= count "H" (count "M")? (count "S")? | count "M" (count "S")? | count "S"
label ::= [a-zA-Z0-9]{1,20} ("-" [a-zA-Z0-9]{1,20}){0,2}
hostname ::= label ("." label){0,3}
email ::= [a-zA-Z0-9_+-]{1,16} ("." [a-zA-Z0-9_+-]{1,16}){0,2} "@" label ("." label){1,3}
uri ::= [a-zA-Z] [a-zA-Z0-9+.-]{0,15} ":" [a-zA-Z0-9._~:/?#@!$&'()*+,;=-]{1,200}
octet ::= "25" [0-5] | "2" [0-4] [0-9] | "1" [0-9] [0-9] | [1-9] [0-9] | [0-9]
ipv4 ::= octet "." octet "." octet "." octet
h16 ::= [0-9a-f]{1,4}
h16c ::= h16 ":"
ls32 ::= h16 ":" h16 | ipv4
ipv6 ::= h16c{6} ls32 | "::" h16c{5} ls32 | h16? "::" h16c{4} ls32 | (h16c{0,1} h16)? "::" h16c{3} ls32 | (h16c{0,2} h16)? "::" h16c{2} ls32 | (h16c{0,3} h16)? "::" h16c ls32 | (h16c{0,4} h16)? "::" ls32 | (h16c{0,5} h16)? "::" h16 | (h16c{0,6} h16)? "::"
uuid ::= [0-9a-f]{8} "-" [0-9a-f]{4} "-" [0-9a-f]{4} "-" [0-9a-f]{4} "-" [0-9a-f]{12}
"""
