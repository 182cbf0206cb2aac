"""Every document the schema grammars let through is valid: random walks through
llama.cpp's own grammar engine, on SmolLM2's real vocabulary, each finished walk
parsed and checked with jsonschema (formats included). On the way, every step checks
that the runtime's greedy shortcut (the best allowed of the top 64) picks the token a
mask over the whole vocabulary picks."""

from __future__ import annotations

import ctypes
import json
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import llama_cpp as ll
import numpy as np
import pytest

from batchyard.engines.local.context import quiet_llama
from batchyard.engines.local.engine import shipped_weights
from batchyard.engines.local.grammar import Candidates, GrammarCache
from batchyard.grammar.json_rules import FORMATS
from batchyard.grammar.json_schema import json_object_grammar, json_schema_grammar


def obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


SCHEMAS: dict[str, dict[str, Any]] = {
    "primitives": obj(
        {
            "s": {"type": "string"},
            "i": {"type": "integer"},
            "n": {"type": "number"},
            "b": {"type": "boolean"},
            "z": {"type": "null"},
        }
    ),
    "optional": obj(
        {"a": {"type": "integer"}, "b": {"type": "string"}, "c": {"type": "boolean"}},
        required=["b"],
    ),
    "none-required": obj({"a": {"type": "integer"}, "b": {"type": "integer"}}, required=[]),
    "enums": obj(
        {
            "e": {"enum": ["red", "green", 3, None, True, 'say "hi"']},
            "c": {"const": "fixed"},
            "t": {"type": ["string", "null"]},
        }
    ),
    "formats": obj({f: {"type": "string", "format": f} for f in FORMATS}),
    "pattern": obj({"code": {"type": "string", "pattern": r"^[A-Z]{3}-\d{2,4}$"}}),
    "arrays": obj(
        {
            "any": {"type": "array"},
            "one": {"type": "array", "items": {"type": "integer"}, "minItems": 1},
            "nested": {"type": "array", "items": obj({"x": {"type": "number"}})},
        }
    ),
    "refs": {
        "$defs": {"P": obj({"name": {"type": "string"}})},
        **obj(
            {
                "p": {"$ref": "#/$defs/P"},
                "q": {"anyOf": [{"$ref": "#/$defs/P"}, {"type": "null"}]},
                "all": {
                    "allOf": [
                        {"type": "object", "properties": {"a": {"type": "integer"}}},
                        {"properties": {"b": {"type": "string"}}, "required": ["b"]},
                    ]
                },
            }
        ),
    },
}


class Walker:
    """Random walks through grammars on one vocabulary."""

    def __init__(self, vocab: Any) -> None:
        self.vocab = vocab
        self.n_vocab = ll.llama_vocab_n_tokens(vocab)
        self.pieces = [self._piece(t) for t in range(self.n_vocab)]
        # a quote ends a string, which would otherwise go on and on: favoured most
        quotes = np.array(['"' in p for p in self.pieces], dtype=np.float32)
        closers = np.array([any(c in p for c in "}],") for p in self.pieces], dtype=np.float32)
        self.eog = np.array([bool(ll.llama_vocab_is_eog(vocab, t)) for t in range(self.n_vocab)])
        self.bias = (6.0 * quotes + 3.0 * closers + 50.0 * self.eog).astype(np.float32)
        self.candidates = Candidates(self.n_vocab)
        self.grammars = GrammarCache(vocab)
        self.chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
        ll.llama_sampler_chain_add(self.chain, ll.llama_sampler_init_greedy())

    def _piece(self, token: int) -> str:
        buf = ctypes.create_string_buffer(64)
        n = ll.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
        return buf.raw[: max(n, 0)].decode(errors="replace")

    def walk(self, grammar: str, rng: np.random.Generator, steps: int = 400) -> str | None:
        """A random document the grammar allows (None if it did not end in `steps`): each
        step random logits, favouring tokens that close things, masked by the grammar."""
        sampler = self.grammars.new_sampler(grammar)
        out = bytearray()
        try:
            for _ in range(steps):
                logits = rng.standard_normal(self.n_vocab, dtype=np.float32) + self.bias
                pointer = logits.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
                fast = self.candidates.best_allowed(sampler, pointer)
                token = self.candidates.resample(sampler, self.chain, pointer)
                assert token >= 0, "the grammar allowed no token"
                # the runtime's shortcut for greedy picks what masking everything picks
                assert fast in (-1, token)
                if self.eog[token]:
                    return out.decode()
                ll.llama_sampler_accept(sampler, token)
                out += self.pieces[token].encode()
            return None
        finally:
            ll.llama_sampler_free(sampler)

    def close(self) -> None:
        ll.llama_sampler_free(self.chain)
        self.grammars.close()


@pytest.fixture(scope="module")
def walker() -> Iterator[Walker]:
    quiet_llama()
    params = ll.llama_model_default_params()
    params.vocab_only = True
    model = ll.llama_model_load_from_file(str(shipped_weights()).encode(), params)
    assert model
    w = Walker(ll.llama_model_get_vocab(model))
    yield w
    w.close()
    ll.llama_model_free(model)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_walk_through_a_schema_grammar_is_a_valid_document(walker: Walker, name: str) -> None:
    schema = SCHEMAS[name]
    validator = jsonschema_rs.validator_for(schema, validate_formats=True)
    rng = np.random.default_rng(len(name))
    finished = [d for d in (walker.walk(json_schema_grammar(schema), rng) for _ in range(8)) if d]
    assert finished, "no walk finished"
    for document in finished:
        value = json.loads(document)
        assert validator.is_valid(value), (document, list(validator.iter_errors(value))[:1])


def test_every_walk_through_the_json_object_grammar_is_an_object(walker: Walker) -> None:
    rng = np.random.default_rng(7)
    finished = [d for d in (walker.walk(json_object_grammar(), rng) for _ in range(8)) if d]
    assert finished
    assert all(isinstance(json.loads(d), dict) for d in finished)
