"""A sequence's next token on llama.cpp: its sampler chain, its grammar, its stop conditions."""

from __future__ import annotations

import ctypes
import hashlib
import random
from typing import TYPE_CHECKING, Any

import llama_cpp as ll

from batchyard.engines.local.answer_shape import partial_end
from batchyard.engines.local.grammar import Candidates

if TYPE_CHECKING:
    from batchyard.engines.local.generation import Generation, Sampling


def sampler_chain(sampling: Sampling) -> Any:
    """A llama.cpp sampler chain for `sampling` (greedy at a temperature of 0)."""
    chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
    if sampling.temperature <= 0:
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_greedy())
        return chain
    if sampling.top_k:
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_top_k(sampling.top_k))
    if sampling.top_p is not None and sampling.top_p < 1.0:
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_top_p(sampling.top_p, 1))
    ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_temp(sampling.temperature))
    seed = sampling.seed if sampling.seed is not None else random.getrandbits(32)
    ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_dist(seed))
    return chain


class TokenSampler:
    """Takes a sequence's next token from the logits of its last call, and sees whether
    that ends the answer (end of generation, a stop sequence, `max_tokens`, the slice)."""

    def __init__(self, ctx: Any, vocab: Any, candidates: Candidates, n_ctx_seq: int) -> None:
        self.ctx = ctx
        self.vocab = vocab
        self.candidates = candidates
        self.n_ctx_seq = n_ctx_seq
        self._piece = ctypes.create_string_buffer(256)

    def take(self, g: Generation) -> bool:
        """Sample `g`'s next token; True when that ends `g` (its stop_reason or error set)."""
        if g.logit_digests is not None:
            row = ll.llama_get_logits_ith(self.ctx, g.logit_index)
            size = ll.llama_vocab_n_tokens(self.vocab) * ctypes.sizeof(ctypes.c_float)
            g.logit_digests.append(hashlib.sha1(ctypes.string_at(row, size)).digest())
        token = ll.llama_sampler_sample(g.sampler, self.ctx, g.logit_index)
        if g.grammar_sampler is not None:
            token = self._constrain(g, token)
            if token < 0:
                g.error = "the answer's grammar allows no next token"
                return True
        if ll.llama_vocab_is_eog(self.vocab, token):
            g.stop_reason = "end_turn"
            return True
        n = ll.llama_token_to_piece(self.vocab, token, self._piece, len(self._piece), 0, False)
        g.output_tokens += 1
        before = len(g.out)
        g.out += self._piece.raw[: max(n, 0)]
        if g.stop and _stopped(g, before):
            return True
        if g.on_text is not None:
            emit(g, final=False)
        if g.output_tokens >= g.max_tokens:
            g.stop_reason = "max_tokens"
            return True
        if g.n_past >= self.n_ctx_seq:
            g.stop_reason = "model_context_window_exceeded"
            return True
        g.last_token = token
        return False

    def _constrain(self, g: Generation, token: int) -> int:
        """The token to take under `g`'s grammar, given the one sampled without it.

        Most steps the sampled token fits the grammar and is taken: that asks the
        grammar about one token, not the whole vocabulary. Otherwise, greedy takes the
        best token the grammar allows among the 64 best (the best allowed overall, if
        one is there); failing that the grammar masks every token the rules forbid and
        the chain samples again from what is left: greedy then picks the best allowed
        token, and sampling draws from the allowed tokens in proportion (a rejected
        first draw plus the redraw come to the same distribution). Which way a token is
        found depends only on the sequence's own logits, so answers stay the same in
        any batch. Returns -1 if no token is allowed."""
        grammar = g.grammar_sampler
        if not self.candidates.allows(grammar, token):
            logits = ll.llama_get_logits_ith(self.ctx, g.logit_index)
            token = -1
            if g.sampling.temperature <= 0:
                token = self.candidates.best_allowed(grammar, logits)
            if token < 0:
                token = self.candidates.resample(grammar, g.sampler, logits)
            if token < 0:
                return -1
        ll.llama_sampler_accept(grammar, token)
        return token


def _stopped(g: Generation, before: int) -> bool:
    """Whether the text ends in a stop sequence now (`before`: the bytes it had a token
    ago); if so the text is cut where the first one starts."""
    window = bytes(g.out[max(0, before - 64) :]).decode(errors="ignore")
    text = bytes(g.out).decode(errors="ignore")
    hits = [(text.find(s), s) for s in g.stop if s and s in window]
    if not hits:
        return False
    at, g.stop_sequence = min(hits)
    g.out = bytearray(text[:at].encode())
    g.stop_reason = "stop_sequence"
    return True


def emit(g: Generation, *, final: bool) -> None:
    """Stream new text, holding back a tail that may yet become a stop sequence; with a
    `trigger` (tools the model may call), nothing from the trigger on, nor blank space
    or a start of the trigger at the end (a block of calls may follow)."""
    text = g.text if final else bytes(g.out).decode(errors="ignore")
    end = len(text)
    if g.trigger is not None:
        at = text.find(g.trigger)
        if at >= 0:
            end = len(text[:at].rstrip())
        elif not final:
            end = len(text) - partial_end(text, g.trigger)
            end = len(text[:end].rstrip())
    if not final:
        for stop in g.stop:
            end = min(end, len(text) - partial_end(text, stop))
    if end > g.emitted:
        assert g.on_text is not None
        g.on_text(text[g.emitted : end])
        g.emitted = end
