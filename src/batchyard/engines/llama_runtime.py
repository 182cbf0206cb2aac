"""Continuous batching on llama.cpp's low-level API, in one thread of its own.

Every step decodes the next token of every generating sequence in one call, and
prefills as many prompt tokens of newly admitted sequences as fit beside them (a
call per sequence's chunk), so sequences join and leave the running batch as they
start and finish and the model always works on as many sequences as there are
requests (up to `n_seq`). Each sequence owns a slice of the KV cache (`n_ctx_seq`
tokens) and a sampler chain; a temperature of 0 is greedy, hence deterministic.

A prompt that starts with tokens whose KV is already known (a kept snapshot in
the `PrefixCache`, or a sequence running now) gets that KV copied into its
slice and prefills only the rest; a prompt that shares a long prefix with one
still being prefilled waits for it instead of computing the same tokens again.

Answers never depend on what shares a decode or on a cache hit. Each element of a
matrix product is summed in the same order whatever the batch, in ggml's kernels
and in llamafile's tiles alike; what differs is that a product of one row goes
to ggml's kernel and one of more rows to llamafile's, with other rounding. So the
runtime never lets that choice follow the load: a prompt token is always
prefilled in a piece of two or more (see `_chunk`), a generated token always in a
call of two or more with one token per sequence (see `_decode`). Attention runs
over each sequence's own slice, where its tokens sit at cells 0..n-1: as plain
matrix products (the default), or as llama.cpp's flash attention
(`flash_attention=True`: faster decode, slower prefill here). That CPU kernel
switches between a tiled loop (64 query rows of a sequence in one piece or more),
a split one (one row of one sequence) and a plain row-by-row loop that skips
masked cells, and the three round differently (the same prompt prefilled in
other chunks gave logits up to 0.045 apart); so with it pieces stay under 64 rows
and a call never holds one sequence's single row: only the plain loop runs.
Checked bit for bit on the logits, both ways: alone, in a full batch, and after a
cache hit. `deterministic=False` turns flash attention on without the 64-row
limit (long prompts then take the tiled loop).
"""

from __future__ import annotations

import ctypes
import hashlib
import heapq
import logging
import queue
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import llama_cpp as ll

from batchyard.engines.kv_memory import make_and_release
from batchyard.engines.llama_grammar import Candidates, GrammarCache
from batchyard.engines.prefix_cache import PrefixCache, common_prefix

log = logging.getLogger("batchyard.llama")


@ll.llama_log_callback  # type: ignore[untyped-decorator]
def _quiet(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    if log.isEnabledFor(logging.DEBUG):
        log.debug(text.decode(errors="replace").rstrip())


FLASH_TILE_ROWS = 64
"""ggml's CPU flash attention takes its tiled loop from this many query rows a
sequence in one piece (GGML_FA_TILE_Q), its plain row-by-row loop below it."""


def _runs(generations: list[Generation]) -> list[list[Generation]]:
    """`generations` (in id order) cut into runs of consecutive sequence ids."""
    runs: list[list[Generation]] = []
    for g in generations:
        if runs and runs[-1][-1].seq == g.seq - 1:
            runs[-1].append(g)
        else:
            runs.append([g])
    return runs


def quiet_llama() -> None:
    """llama.cpp's own logging goes to our logger at debug level, not to stderr."""
    ll.llama_log_set(_quiet, ctypes.c_void_p(0))


def llamafile_kernels() -> bool:
    """Whether this llama.cpp build has llamafile's matrix kernels (about twice as fast
    on x86 as ggml's own: bench/runtime.py)."""
    return b"LLAMAFILE = 1" in ll.llama_print_system_info()


@dataclass(slots=True)
class Sampling:
    temperature: float = 1.0
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None


@dataclass(slots=True)
class Generation:
    """One request for the runtime; `done` is called from the runtime thread."""

    prompt: list[int]
    max_tokens: int
    stop: list[str]
    sampling: Sampling
    done: Callable[[Generation], None]
    on_text: Callable[[str], None] | None = None
    breakpoints: list[tuple[int, float]] = field(default_factory=list)
    """`cache_control` breakpoints: (prompt position, seconds to keep that prefix)."""
    on_start: Callable[[Generation], None] | None = None
    """Called once the prompt's cached part is known (before its first token)."""
    logit_digests: list[bytes] | None = None
    """When a list: a digest of the logits each token was sampled from (for tests of
    determinism, bit for bit)."""
    grammar: str | None = None
    """GBNF the answer must follow (structured outputs, forced tool calls); checked
    with `LlamaRuntime.grammar_ok` before it is submitted."""
    # results
    text: str = ""
    output_tokens: int = 0
    stop_reason: str = "end_turn"
    stop_sequence: str | None = None
    error: str | None = None
    cancelled: bool = False
    cache_read: int = 0
    """Prompt tokens whose KV was copied, not computed."""
    cache_creation: int = 0
    """Prompt tokens newly kept in the cache at a `cache_control` breakpoint."""
    cache_creation_1h: int = 0
    """The part of `cache_creation` kept for an hour (the rest for five minutes)."""
    # runtime state
    seq: int = -1
    prefilled: int = 0
    n_past: int = 0
    last_token: int = -1
    logit_index: int = -1
    out: bytearray = field(default_factory=bytearray)
    sampler: Any = None
    grammar_sampler: Any = None
    emitted: int = 0
    decoded: list[int] = field(default_factory=list)
    """Generated tokens whose KV is in the sequence (all but the last sampled one)."""

    def kv_tokens(self) -> list[int]:
        """The tokens whose KV this sequence holds, from position 0."""
        return self.prompt[: self.prefilled] + self.decoded


class LlamaRuntime:
    def __init__(
        self,
        model_path: str | Path,
        *,
        n_seq: int = 32,
        n_ctx_seq: int = 2048,
        n_batch: int = 512,
        n_threads: int | None = None,
        prefix_cache_bytes: int = 256 << 20,
        wait_for_prefix: int = 16,
        deterministic: bool = True,
        flash_attention: bool = False,
    ) -> None:
        import os

        quiet_llama()
        ll.llama_backend_init()
        threads = n_threads or os.cpu_count() or 1
        mparams = ll.llama_model_default_params()
        self.model = ll.llama_model_load_from_file(str(model_path).encode(), mparams)
        if not self.model:
            raise RuntimeError(f"llama.cpp could not load {model_path}")
        self.vocab = ll.llama_model_get_vocab(self.model)
        cparams = ll.llama_context_default_params()
        cparams.n_ctx = n_ctx_seq * (n_seq + 1)
        # a call holds one token of every sequence (decode) or two (the shortest prefill piece)
        n_batch = max(n_batch, 2 * (n_seq + 1))
        cparams.n_batch = n_batch
        cparams.n_ubatch = n_batch
        # one spare sequence beyond `n_seq`, for the padding of `_decode`
        cparams.n_seq_max = n_seq + 1
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        cparams.kv_unified = False
        flash = flash_attention or not deterministic
        cparams.flash_attn_type = (
            ll.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash else ll.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        # flash attention's CPU kernel tiles a piece of 64 rows or more another way
        self.max_piece = FLASH_TILE_ROWS - 1 if flash and deterministic else n_batch
        cparams.no_perf = True
        self.ctx, self.kv_released = make_and_release(
            lambda: ll.llama_init_from_model(self.model, cparams), self._kv_bytes
        )
        if not self.ctx:
            raise RuntimeError("llama.cpp could not create a context")
        self.n_seq = n_seq
        self.n_ctx_seq = (
            ll.llama_n_ctx_seq(self.ctx) if hasattr(ll, "llama_n_ctx_seq") else n_ctx_seq
        )
        self.n_batch = n_batch
        self.memory = ll.llama_get_memory(self.ctx)
        self.batch = ll.llama_batch_init(n_batch, 0, 1)
        self._incoming: queue.SimpleQueue[Generation | None] = queue.SimpleQueue()
        self._waiting: list[Generation] = []
        self._active: dict[int, Generation] = {}
        self._free = list(range(n_seq))  # a heap: the lowest id first keeps the run short
        self.n_seq_max = n_seq + 1
        self._pad_token = max(ll.llama_vocab_bos(self.vocab), 0)
        self._piece = ctypes.create_string_buffer(256)
        self._stopped = False
        self.cache = PrefixCache(prefix_cache_bytes) if prefix_cache_bytes > 0 else None
        self._grammars = GrammarCache(self.vocab)
        self.candidates = Candidates(ll.llama_vocab_n_tokens(self.vocab))
        self.wait_for_prefix = wait_for_prefix
        """A prompt sharing this many more tokens with one still prefilling waits for it."""
        self._thread = threading.Thread(target=self._loop, name="batchyard-llama", daemon=True)
        self._thread.start()
        self.steps = 0

    def _kv_bytes(self, ctx: Any) -> int:
        """The size of the KV cache llama.cpp allocates for `ctx` (F16 keys and values)."""
        if not ctx:
            return 0
        heads, kv_heads = ll.llama_model_n_head(self.model), ll.llama_model_n_head_kv(self.model)
        head_dim = ll.llama_model_n_embd(self.model) // heads
        per_token = int(ll.llama_model_n_layer(self.model)) * 2 * kv_heads * head_dim * 2
        n_ctx: int = ll.llama_n_ctx(ctx)
        return int(n_ctx * per_token)

    # --- called from any thread ---------------------------------------------------

    def submit(self, generation: Generation) -> None:
        self._incoming.put(generation)

    def tokenize(self, text: str, *, add_special: bool) -> list[int]:
        data = text.encode()
        capacity = len(data) + 16
        tokens = (ll.llama_token * capacity)()
        n = ll.llama_tokenize(self.vocab, data, len(data), tokens, capacity, add_special, True)
        if n < 0:
            capacity = -n
            tokens = (ll.llama_token * capacity)()
            n = ll.llama_tokenize(self.vocab, data, len(data), tokens, capacity, add_special, True)
        return list(tokens[:n])

    def grammar_ok(self, grammar: str) -> bool:
        """Whether llama.cpp takes `grammar` (parsed once, kept for the sequences using it)."""
        return self._grammars.parses(grammar)

    def metadata(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(1 << 16)
        n = ll.llama_model_meta_val_str(self.model, key.encode(), buf, len(buf))
        return buf.value.decode() if n >= 0 else None

    def token_text(self, token: int) -> str:
        n = ll.llama_token_to_piece(self.vocab, token, self._piece, len(self._piece), 0, True)
        return self._piece.raw[: max(n, 0)].decode(errors="replace")

    def close(self) -> None:
        self._stopped = True
        self._incoming.put(None)
        self._thread.join(30)
        ll.llama_batch_free(self.batch)
        self._grammars.close()
        ll.llama_free(self.ctx)
        ll.llama_model_free(self.model)

    # --- the runtime thread ---------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopped:
            block = not self._active and not self._waiting
            try:
                while True:
                    item = self._incoming.get(block=block)
                    block = False
                    if item is None:
                        return
                    self._waiting.append(item)
            except queue.Empty:
                pass
            try:
                self._step()
            except Exception as exc:  # a broken step fails its sequences, not the thread
                log.exception("llama.cpp step failed")
                for generation in [*self._active.values()]:
                    generation.error = f"local engine failure: {exc}"
                    self._finish(generation)

    def _admit(self) -> None:
        waiting, self._waiting = self._waiting, []
        for generation in waiting:
            if generation.cancelled:
                generation.done(generation)
                continue
            if not self._free or self._should_wait(generation):
                self._waiting.append(generation)
                continue
            if generation.grammar is not None:
                generation.grammar_sampler = self._grammars.new_sampler(generation.grammar)
                if generation.grammar_sampler is None:
                    generation.error = "llama.cpp did not take the answer's grammar"
                    generation.done(generation)
                    continue
            generation.seq = heapq.heappop(self._free)
            generation.sampler = self._sampler(generation.sampling)
            ll.llama_memory_seq_rm(self.memory, generation.seq, -1, -1)
            self._reuse_prefix(generation)
            self._active[generation.seq] = generation
            if generation.on_start is not None:
                generation.on_start(generation)

    def _usable(self, g: Generation) -> int:
        """How much of a prompt may come from elsewhere: all but its last two tokens (the
        last one's logits start the answer; a prefill is never one token, see `_chunk`)."""
        return len(g.prompt) - 2

    def _should_wait(self, g: Generation) -> bool:
        """Whether `g` shares a long prefix with a prompt still being prefilled, more than
        is at hand now: it then waits a few steps and copies instead of recomputing."""
        if self.cache is None or self.wait_for_prefix <= 0:
            return False
        usable = self._usable(g)
        at_hand = self.cache.longest(g.prompt[:usable], touch=False)[1]
        for other in self._active.values():
            if other.prefilled < len(other.prompt):
                coming = common_prefix(other.prompt, g.prompt[:usable])
                if coming - max(at_hand, other.prefilled) >= self.wait_for_prefix:
                    return True
        return False

    def _reuse_prefix(self, g: Generation) -> None:
        """Copy the KV of the longest known prefix of `g`'s prompt into its sequence."""
        if self.cache is None:
            return
        usable = g.prompt[: self._usable(g)]
        entry, matched = self.cache.longest(usable)
        source: Generation | None = None
        for other in self._active.values():
            n = common_prefix(other.kv_tokens(), usable)
            if n > matched:
                source, matched = other, n
        if matched < self.cache.block:
            return
        if source is not None:
            snapshot = self._snapshot(source.seq)
            if snapshot is None:
                return
            blob, size = snapshot
        else:
            assert entry is not None
            blob, size = entry.blob, entry.nbytes
        if ll.llama_state_seq_set_data(self.ctx, blob, size, g.seq) != size:
            log.warning("restoring a cached prefix failed; prefilling the whole prompt")
            ll.llama_memory_seq_rm(self.memory, g.seq, -1, -1)
            return
        ll.llama_memory_seq_rm(self.memory, g.seq, matched, -1)
        g.prefilled = g.n_past = g.cache_read = matched
        self.cache.stats.tokens_served += matched
        # a breakpoint inside the part read refreshes how long it is kept
        keep_for = max((ttl for p, ttl in g.breakpoints if p <= matched), default=0.0)
        if source is not None or entry is None or len(entry.tokens) > matched:
            # a branch point: keep the shared part alone, so later prompts find it
            self._keep(g, keep_for=keep_for)
        elif keep_for:
            self.cache.pin(entry, keep_for)

    def _snapshot(self, seq: int) -> tuple[Any, int] | None:
        """A copy of a sequence's KV (None if llama.cpp could not write it whole)."""
        size = ll.llama_state_seq_get_size(self.ctx, seq)
        blob = (ctypes.c_uint8 * size)()
        written = ll.llama_state_seq_get_data(self.ctx, blob, size, seq)
        if size == 0 or written != size:
            log.warning("could not copy the KV of a sequence (%d of %d bytes)", written, size)
            return None
        return blob, size

    def _keep(self, g: Generation, *, keep_for: float) -> Any:
        """Put the KV `g` holds now into the cache."""
        assert self.cache is not None
        tokens = g.kv_tokens()
        held = self.cache.covers(tokens)
        if held is not None:
            if keep_for:
                self.cache.pin(held, keep_for)
            return held
        snapshot = self._snapshot(g.seq)
        if snapshot is None:
            return None
        return self.cache.add(tokens, *snapshot, keep_for=keep_for)

    def _sampler(self, sampling: Sampling) -> Any:
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

    def _add(self, token: int, pos: int, seq: int, logits: bool) -> int:
        b = self.batch
        i: int = b.n_tokens
        b.token[i] = token
        b.pos[i] = pos
        b.n_seq_id[i] = 1
        b.seq_id[i][0] = seq
        b.logits[i] = logits
        b.n_tokens = i + 1
        return i

    def _step(self) -> None:
        for generation in [g for g in self._active.values() if g.cancelled]:
            self._finish(generation)
        self._admit()
        if not self._active:
            return
        active = [self._active[seq] for seq in sorted(self._active)]
        decoding = [g for g in active if g.prefilled == len(g.prompt)]
        # Prompt tokens of new sequences, as many as fit beside one token of every
        # generating sequence (all keep moving): a call for each run of consecutive ids.
        room = self.n_batch - len(decoding)
        for run in _runs([g for g in active if g.prefilled < len(g.prompt)]):
            if room < 2:
                break
            room -= self._prefill(run, room)
        if decoding:
            self._decode(decoding)
        self.steps += 1

    def _chunk(self, g: Generation, room: int) -> int:
        """How many prompt tokens `g` prefills now: never a piece of one token (unless the
        whole prompt is one), so a prompt token is always computed by the same kernels
        whatever the load and however much of the prompt came from the cache."""
        remaining = len(g.prompt) - g.prefilled
        # a chunk ends at a cache_control breakpoint, so that prefix can be kept
        ahead = [p - g.prefilled for p, _ in g.breakpoints if p - g.prefilled >= 2]
        n = min(room, remaining, self.max_piece, *ahead)
        if 0 < remaining - n < 2:
            n = remaining - 2 if n > 2 else remaining
        return max(n, min(2, remaining))

    def _prefill(self, run: list[Generation], room: int) -> int:
        """Prompt chunks of a run of consecutive sequence ids, in one call; returns how
        many tokens it computed.

        llama.cpp computes such a call in one piece only if every sequence brings as
        many tokens, so each chunk is padded to the longest with throwaway tokens after
        its own (later positions: nothing real attends to them), removed right after.
        A finishing chunk asks for the logits of its last two tokens, so a piece never
        has a single output row (whose product would take the other kernel)."""
        width = len(run)
        longest = max(len(g.prompt) - g.prefilled for g in run)
        limit = max(2, min(longest, room // width, self.n_batch // width))
        chunks = [(g, self._chunk(g, limit)) for g in run]
        size = max(n for _, n in chunks)
        if width > 1 and any(g.n_past + size > self.n_ctx_seq for g in run):
            # padding would run past a slice's end: one call each, without padding
            used = 0
            for g in run:
                if room - used >= 2:
                    used += self._prefill([g], room - used)
            return used
        self.batch.n_tokens = 0
        pads: list[tuple[int, int]] = []
        for g, n in chunks:
            g.logit_index = -1
            end = len(g.prompt)
            for k in range(n):
                at = g.prefilled + k
                index = self._add(g.prompt[at], g.n_past + k, g.seq, at >= end - 2)
                if at == end - 1:
                    g.logit_index = index
            for k in range(n, size):
                self._add(self._pad_token, g.n_past + k, g.seq, False)
            g.prefilled += n
            g.n_past += n
            if size > n:
                pads.append((g.seq, g.n_past))
        try:
            self._run()
        finally:
            for seq, pos in pads:
                ll.llama_memory_seq_rm(self.memory, seq, pos, -1)
        for g, _ in chunks:
            if self.cache is not None:
                self._keep_breakpoint(g)
            if g.logit_index >= 0:
                self._sample(g)
        return size * width

    def _decode(self, decoding: list[Generation]) -> None:
        """One token of every generating sequence, in one call.

        llama.cpp computes a call in pieces of consecutive sequence ids, and a matrix
        product of one row (a piece of one token) takes another kernel than one of many
        (llamafile's), with other rounding. So the call covers one run of ids, holes and
        a lone sequence padded with a throwaway token of an idle sequence (a free one, the
        spare, or one being prefilled, at its next position), removed right after."""
        self.batch.n_tokens = 0
        ids = {g.seq: g for g in decoding}
        lo, hi = min(ids), max(ids)
        if lo == hi:
            hi = lo + 1 if lo + 1 < self.n_seq_max else lo - 1
            lo, hi = min(lo, hi), max(lo, hi)
        pads: list[tuple[int, int]] = []
        for seq in range(lo, hi + 1):
            g = ids.get(seq)
            if g is not None:
                g.logit_index = self._add(g.last_token, g.n_past, seq, True)
                g.decoded.append(g.last_token)
                g.n_past += 1
                continue
            other = self._active.get(seq)
            pos = other.n_past if other is not None else 0
            self._add(self._pad_token, pos, seq, True)
            pads.append((seq, pos))
        try:
            self._run()
        finally:
            for seq, pos in pads:
                ll.llama_memory_seq_rm(self.memory, seq, pos, -1)
        for g in decoding:
            self._sample(g)

    def _run(self) -> None:
        status = ll.llama_decode(self.ctx, self.batch)
        if status != 0:
            raise RuntimeError(f"llama_decode returned {status}")

    def _keep_breakpoint(self, g: Generation) -> None:
        """Keep the prefix that ends at a breakpoint the prefill has just reached."""
        keep = [ttl for p, ttl in g.breakpoints if p == g.prefilled]
        if not keep or g.decoded:
            return
        kept = self._keep(g, keep_for=max(keep))
        if kept is not None and g.prefilled > g.cache_read:
            g.cache_creation = g.prefilled - g.cache_read
            if max(keep) >= 3600:
                g.cache_creation_1h = g.cache_creation

    def _sample(self, g: Generation) -> None:
        if g.logit_digests is not None:
            row = ll.llama_get_logits_ith(self.ctx, g.logit_index)
            size = ll.llama_vocab_n_tokens(self.vocab) * ctypes.sizeof(ctypes.c_float)
            g.logit_digests.append(hashlib.sha1(ctypes.string_at(row, size)).digest())
        token = ll.llama_sampler_sample(g.sampler, self.ctx, g.logit_index)
        if g.grammar_sampler is not None:
            token = self._constrain(g, token)
            if token < 0:
                g.error = "the answer's grammar allows no next token"
                self._finish(g)
                return
        if ll.llama_vocab_is_eog(self.vocab, token):
            g.stop_reason = "end_turn"
            self._finish(g)
            return
        n = ll.llama_token_to_piece(self.vocab, token, self._piece, len(self._piece), 0, False)
        piece = self._piece.raw[: max(n, 0)]
        g.output_tokens += 1
        before = len(g.out)
        g.out += piece
        if g.stop:
            window = bytes(g.out[max(0, before - 64) :]).decode(errors="ignore")
            text = bytes(g.out).decode(errors="ignore")
            hits = [(text.find(s), s) for s in g.stop if s and s in window]
            if hits:
                at, g.stop_sequence = min(hits)
                g.out = bytearray(text[:at].encode())
                g.stop_reason = "stop_sequence"
                self._finish(g)
                return
        if g.on_text is not None:
            self._emit(g, final=False)
        if g.output_tokens >= g.max_tokens:
            g.stop_reason = "max_tokens"
            self._finish(g)
        elif g.n_past >= self.n_ctx_seq:
            g.stop_reason = "model_context_window_exceeded"
            self._finish(g)
        else:
            g.last_token = token

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

    def _finish(self, g: Generation) -> None:
        self._active.pop(g.seq, None)
        if self.cache is not None and not g.cancelled and g.error is None and g.seq >= 0:
            self._keep(g, keep_for=0.0)  # for a follow-up turn, or prompts that share it
        ll.llama_memory_seq_rm(self.memory, g.seq, -1, -1)
        if g.sampler is not None:
            ll.llama_sampler_free(g.sampler)
            g.sampler = None
        if g.grammar_sampler is not None:
            ll.llama_sampler_free(g.grammar_sampler)
            g.grammar_sampler = None
        heapq.heappush(self._free, g.seq)
        g.text = bytes(g.out).decode(errors="replace")
        if g.on_text is not None:
            self._emit(g, final=True)
        g.done(g)

    @staticmethod
    def _emit(g: Generation, *, final: bool) -> None:
        """Stream new text, holding back a tail that may yet become a stop sequence."""
        text = g.text if final else bytes(g.out).decode(errors="ignore")
        end = len(text)
        if not final:
            for stop in g.stop:
                for k in range(min(len(stop) - 1, len(text)), 0, -1):
                    if text.endswith(stop[:k]):
                        end = min(end, len(text) - k)
                        break
        if end > g.emitted:
            assert g.on_text is not None
            g.on_text(text[g.emitted : end])
            g.emitted = end
