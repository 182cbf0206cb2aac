"""Grammar-constrained sampling on llama.cpp: grammars parsed once and cloned for each
sequence, and the token arrays that ask a grammar about one token, the best few, or
the whole vocabulary (`sampling.TokenSampler` uses them in that order)."""

from __future__ import annotations

import ctypes
import re
import threading
from typing import Any

import llama_cpp as ll


def _init(vocab: Any, grammar: str, trigger: str | None) -> Any:
    if trigger is None:
        return ll.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
    # matched against the whole answer so far; the grammar is fed the answer from the
    # first group on (the trigger included: the grammar's root starts with it)
    pattern = f"[\\s\\S]*?({re.escape(trigger)})[\\s\\S]*".encode()
    patterns = (ctypes.c_char_p * 1)(pattern)
    return ll.llama_sampler_init_grammar_lazy_patterns(
        vocab, grammar.encode(), b"root", patterns, 1, None, 0
    )


class GrammarCache:
    """Grammars parsed once: each sequence gets a clone of the parsed one (its own
    parse state), so a batch of 100k requests with one schema parses it once. A lazy
    grammar (with a `trigger`) applies only once the answer holds the trigger."""

    def __init__(self, vocab: Any, size: int = 64) -> None:
        self.vocab = vocab
        self.size = size
        self._parsed: dict[tuple[str, str | None], Any] = {}
        self._lock = threading.Lock()

    def _parsed_locked(self, grammar: str, trigger: str | None = None) -> Any:
        key = (grammar, trigger)
        parsed = self._parsed.pop(key, None)
        if parsed is None:
            parsed = _init(self.vocab, grammar, trigger)
            if not parsed:
                return None
            while len(self._parsed) >= self.size:
                ll.llama_sampler_free(self._parsed.pop(next(iter(self._parsed))))
        self._parsed[key] = parsed  # the most recent last
        return parsed

    def parses(self, grammar: str) -> bool:
        with self._lock:
            return self._parsed_locked(grammar) is not None

    def new_sampler(self, grammar: str, trigger: str | None = None) -> Any:
        """A sampler of its own for a sequence (cloned under the lock: another thread's
        eviction cannot free the parsed grammar meanwhile); None if llama.cpp refuses it."""
        with self._lock:
            parsed = self._parsed_locked(grammar, trigger)
            return ll.llama_sampler_clone(parsed) if parsed is not None else None

    def close(self) -> None:
        with self._lock:
            for parsed in self._parsed.values():
                ll.llama_sampler_free(parsed)
            self._parsed.clear()


class Candidates:
    """llama.cpp token arrays for asking a grammar about one token, the best few, or all."""

    TOP = 64

    def __init__(self, n_vocab: int) -> None:
        import numpy as np

        self.np = np
        self.n_vocab = n_vocab
        self.one = ll.llama_token_data()
        self.one_array = ll.llama_token_data_array(
            data=ctypes.pointer(self.one), size=1, selected=-1, sorted=False
        )
        dtype = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
        assert dtype.itemsize == ctypes.sizeof(ll.llama_token_data)
        self.all = np.zeros(n_vocab, dtype=dtype)
        self.ids = np.arange(n_vocab, dtype=np.int32)
        self.all_array = ll.llama_token_data_array(
            data=self.all.ctypes.data_as(ctypes.POINTER(ll.llama_token_data)),
            size=n_vocab,
            selected=-1,
            sorted=False,
        )
        self.top = np.zeros(self.TOP, dtype=dtype)
        self.top_array = ll.llama_token_data_array(
            data=self.top.ctypes.data_as(ctypes.POINTER(ll.llama_token_data)),
            size=self.TOP,
            selected=-1,
            sorted=False,
        )
        self.asked = 0
        """Tokens checked against a grammar (one a constrained step)."""
        self.top_passes = 0
        """Greedy steps whose pick the grammar refused, answered from the best `TOP`."""
        self.full_passes = 0
        """Steps that masked the whole vocabulary."""

    def allows(self, grammar: Any, token: int) -> bool:
        self.asked += 1
        one: Any = self.one
        one.id, one.logit, one.p = token, 0.0, 0.0
        self.one_array.size, self.one_array.selected, self.one_array.sorted = 1, -1, False
        ll.llama_sampler_apply(grammar, ctypes.byref(self.one_array))
        return bool(self.one.logit != float("-inf"))

    def best_allowed(self, grammar: Any, logits: Any) -> int:
        """The highest-scoring token the grammar allows among the `TOP` best, the lowest id
        among equals (-1 if none is, or if one outside them may score the same): greedy's
        pick under the grammar, found without masking the whole vocabulary (which costs
        llama.cpp 5-15 ms at 49k tokens)."""
        np = self.np
        self.top_passes += 1
        row = np.ctypeslib.as_array(logits, shape=(self.n_vocab,))
        best = np.argpartition(row, -self.TOP)[-self.TOP :]
        best = best[np.lexsort((best, -row[best]))]  # best first; a tie: the lower id first
        self.top["id"], self.top["logit"], self.top["p"] = best, row[best], 0.0
        array = self.top_array
        array.size, array.selected, array.sorted = self.TOP, -1, False
        ll.llama_sampler_apply(grammar, ctypes.byref(array))
        allowed = np.flatnonzero(self.top["logit"] != float("-inf"))
        if not allowed.size or row[best[allowed[0]]] == row[best[-1]]:
            return -1  # none allowed, or tokens outside the 64 may tie the pick: mask all
        return int(best[allowed[0]])

    def resample(self, grammar: Any, chain: Any, logits: Any) -> int:
        """The chain's pick among the tokens the grammar allows (-1 if none is)."""
        np = self.np
        self.full_passes += 1
        self.all["id"] = self.ids
        self.all["logit"] = np.ctypeslib.as_array(logits, shape=(self.n_vocab,))
        self.all["p"] = 0.0
        array = self.all_array
        array.size, array.selected, array.sorted = self.n_vocab, -1, False
        ll.llama_sampler_apply(grammar, ctypes.byref(array))
        ll.llama_sampler_apply(chain, ctypes.byref(array))
        if not 0 <= array.selected < array.size:
            return -1
        picked = array.data[array.selected]
        return -1 if picked.logit == float("-inf") else int(picked.id)
