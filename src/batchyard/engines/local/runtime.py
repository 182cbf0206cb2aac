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
prefilled in a piece of two or more (see `calls.PaddedCalls.chunk`), a generated
token always in a call of two or more with one token per sequence (see its
`decode`). Attention runs over each sequence's own slice, where its tokens sit at
cells 0..n-1: as llama.cpp's flash attention (the default: faster decode, KV memory
by token), or as plain matrix products (`flash_attention=False`, V kept transposed).
llama.cpp's own CPU kernel switches between a tiled loop (64 query rows of a
sequence in one piece or more), a split one (one row of one sequence) and a plain
row-by-row loop that skips masked cells, which round differently (the same prompt
prefilled in other chunks gave logits up to 0.045 apart). `make install` builds
batchyard's kernel instead (`patches/llama.cpp`): a KV head's query heads and a
sequence's tokens go over the KV in fixed tiles aligned to cell 0, each row's
arithmetic the same whatever shares the call, so pieces may be of any size
(`context.batch_invariant_attention`). With llama.cpp's own kernel, pieces stay
under 64 rows and a call never holds one sequence's single row. Checked bit for bit on the logits, both ways:
alone, in a full batch, and after a cache hit. `deterministic=False` lifts the
64-row limit of llama.cpp's own kernel (long prompts then take its tiled loop).

The slices are pages of one pool (`kv_pool`): with a KV budget a sequence is
admitted when its prompt fits beside the running ones, and when they outgrow it the
last admitted is preempted (its KV dropped, its answer so far joined to its prompt
to prefill again: the same answer, bit for bit). An idle runtime hands every slice
back to the system.
"""

from __future__ import annotations

import ctypes
import heapq
import logging
import os
import queue
import threading
from pathlib import Path

import llama_cpp as ll

from batchyard.engines.local.calls import PaddedCalls, runs
from batchyard.engines.local.context import (
    batch_invariant_attention,
    kv_layout,
    load_model,
    model_meta,
    new_context,
    quiet_llama,
    slice_tokens,
)
from batchyard.engines.local.generation import Generation
from batchyard.engines.local.grammar import Candidates, GrammarCache
from batchyard.engines.local.kv_pool import KvPool, locate
from batchyard.engines.local.prefix import PrefixReuse
from batchyard.engines.local.prefix_cache import PrefixCache
from batchyard.engines.local.sampling import TokenSampler, emit, sampler_chain

log = logging.getLogger("batchyard.llama")


MIN_BUDGET_CELLS = 16
"""The fewest tokens a KV budget must hold for one sequence."""
HEADROOM = 8
"""Steps of growth of the running sequences kept free when one more is admitted (so
that it is not preempted at once)."""


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
        flash_attention: bool = True,
        kv_budget_bytes: int = 0,
    ) -> None:
        quiet_llama()
        self.model = load_model(model_path)
        self.vocab = ll.llama_model_get_vocab(self.model)
        flash = flash_attention or not deterministic
        if kv_budget_bytes < 0 or 0 < kv_budget_bytes < MIN_BUDGET_CELLS * kv_layout(
            self.model, n_stream=1, cells=n_ctx_seq, flash=flash
        ).held(1):
            ll.llama_model_free(self.model)
            raise ValueError(
                f"a KV budget of {kv_budget_bytes} bytes holds less than {MIN_BUDGET_CELLS}"
                " tokens of one sequence here"
            )
        # a call holds one token of every sequence (decode) or two (the shortest prefill piece)
        n_batch = max(n_batch, 2 * (n_seq + 1))
        self.ctx, chunk = new_context(
            self.model,
            n_seq=n_seq,
            n_ctx_seq=n_ctx_seq,
            n_batch=n_batch,
            threads=n_threads or os.cpu_count() or 1,
            flash=flash,
        )
        self.n_seq = n_seq
        cells = slice_tokens(self.ctx, n_ctx_seq)
        self.n_batch = n_batch
        self.memory = ll.llama_get_memory(self.ctx)
        self._calls = PaddedCalls(
            self.ctx,
            self.memory,
            n_batch=n_batch,
            n_ctx_seq=cells,
            n_seq_max=n_seq + 1,
            pad_token=max(ll.llama_vocab_bos(self.vocab), 0),
            flash_tiles=flash and deterministic and not batch_invariant_attention(self.model),
        )
        layout = kv_layout(self.model, n_stream=n_seq + 1, cells=cells, flash=flash)
        base = locate(chunk, layout, n_seq, self._probe) if chunk is not None else None
        self.kv = KvPool(layout, kv_budget_bytes, base)
        self.kv.release(n_seq)
        self._calls.drain_touched()
        self.slice_tokens = cells
        self.n_ctx_seq = layout.cells_within(kv_budget_bytes) if kv_budget_bytes > 0 else cells
        """The most tokens a sequence holds: its slice, or less where the budget is less."""
        self.preemptions = 0
        self._admissions = 0
        self._incoming: queue.SimpleQueue[Generation | None] = queue.SimpleQueue()
        self._waiting: list[Generation] = []
        self._active: dict[int, Generation] = {}
        self._free = list(range(n_seq))  # a heap: the lowest id first keeps the run short
        self._piece = ctypes.create_string_buffer(256)
        self._stopped = False
        self.cache = PrefixCache(prefix_cache_bytes) if prefix_cache_bytes > 0 else None
        self._prefixes = (
            PrefixReuse(self.ctx, self.memory, self.cache, wait_for_prefix)
            if self.cache is not None
            else None
        )
        self._grammars = GrammarCache(self.vocab)
        self.candidates = Candidates(ll.llama_vocab_n_tokens(self.vocab))
        self._tokens = TokenSampler(self.ctx, self.vocab, self.candidates, self.n_ctx_seq)
        self._thread = threading.Thread(target=self._loop, name="batchyard-llama", daemon=True)
        self._thread.start()
        self.steps = 0

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
        return model_meta(self.model, key)

    def token_text(self, token: int) -> str:
        n = ll.llama_token_to_piece(self.vocab, token, self._piece, len(self._piece), 0, True)
        return self._piece.raw[: max(n, 0)].decode(errors="replace")

    def _probe(self) -> None:
        """Two throwaway tokens into the spare sequence (for `kv_pool.locate`), then gone."""
        self._calls.batch.n_tokens = 0
        for pos in (0, 1):
            self._calls._add(self._calls.pad_token, pos, self.n_seq, pos == 1)
        self._calls._run([(self.n_seq, 0)])

    def close(self) -> None:
        self._stopped = True
        self._incoming.put(None)
        self._thread.join(30)
        self._calls.close()
        self._grammars.close()
        ll.llama_free(self.ctx)
        ll.llama_model_free(self.model)

    # --- the runtime thread ---------------------------------------------------------

    def _loop(self) -> None:
        ran = False
        while not self._stopped:
            block = not self._active and not self._waiting
            if block and ran:
                # idle: the memory goes back to the system (every slice written into,
                # the throwaway tokens' and the spare's included: `PaddedCalls` counts them)
                self.kv.release_idle(keep=set())
                ran = False
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
                ran = True
                self._step()
            except Exception as exc:  # a broken step fails its sequences, not the thread
                log.exception("llama.cpp step failed")
                for generation in [*self._active.values()]:
                    generation.error = f"local engine failure: {exc}"
                    self._finish(generation)

    def _admit(self) -> None:
        # interactive calls first, then arrival order (the sort is stable)
        waiting, self._waiting = sorted(self._waiting, key=lambda g: g.priority), []
        full = False
        for generation in waiting:
            if generation.cancelled:
                self._free_samplers(generation)
                generation.done(generation)
                continue
            full = full or not self._free or not self._kv_room(generation)
            if full or self._should_wait(generation):
                self._waiting.append(generation)
                continue
            if generation.resumed:
                self._resume(generation)
                continue
            if generation.grammar is not None:
                generation.grammar_sampler = self._grammars.new_sampler(
                    generation.grammar, generation.trigger
                )
                if generation.grammar_sampler is None:
                    generation.error = "llama.cpp did not take the answer's grammar"
                    generation.done(generation)
                    continue
            generation.seq = heapq.heappop(self._free)
            generation.sampler = sampler_chain(generation.sampling)
            ll.llama_memory_seq_rm(self.memory, generation.seq, -1, -1)
            self._reuse(generation)
            self._activate(generation)
            if generation.on_start is not None:
                generation.on_start(generation)

    def _activate(self, g: Generation) -> None:
        self._admissions += 1
        g.admitted = self._admissions
        self._active[g.seq] = g

    def _resume(self, g: Generation) -> None:
        """A preempted sequence back in a slice: it prefills what it had (its samplers and
        answer so far kept) and goes on where it stopped."""
        g.seq = heapq.heappop(self._free)
        ll.llama_memory_seq_rm(self.memory, g.seq, -1, -1)
        self._reuse(g)
        self._active[g.seq] = g  # its place in line kept: the last admitted go first

    def _reuse(self, g: Generation) -> None:
        """A known prefix of `g`'s prompt copied into its slice, if any; the slice counts
        every cell the copy wrote (the source's tail too, removed but touched)."""
        if self._prefixes is not None:
            self.kv.wrote(g.seq, self._prefixes.reuse(g, self._active.values()))

    # --- the KV budget --------------------------------------------------------------

    def _needs(self, steps: int = 1) -> dict[int, int]:
        """Cells each running sequence will hold `steps` steps on (a prompt counted whole)."""
        return {
            g.seq: len(g.prompt) if g.prefilled < len(g.prompt) else g.n_past + steps
            for g in self._active.values()
        }

    def _kv_room(self, g: Generation) -> bool:
        """Whether `g`'s prompt fits in the budget beside what runs (slices of ended
        sequences handed back to make room); a sequence alone always fits."""
        if self.kv.budget <= 0 or not self._active:
            return True
        needs = self._needs(HEADROOM)
        # a copied prefix writes the whole KV it is copied from (cut right after)
        copied = self._prefixes.would_write(g, self._active.values()) if self._prefixes else 0
        needs[self._free[0]] = max(len(g.prompt) + 1, copied)
        if self.kv.fits(needs):
            return True
        return self.kv.release_idle(set(self._active)) and self.kv.fits(needs)

    def _keep_within_budget(self) -> None:
        """Before a step: if what runs would outgrow the budget, hand back ended slices,
        then preempt the sequences admitted last (batch work before interactive)."""
        if self.kv.budget <= 0 or self.kv.fits(self._needs()):
            return
        self.kv.release_idle(set(self._active))
        while len(self._active) > 1 and not self.kv.fits(self._needs()):
            victim = max(self._active.values(), key=lambda g: (g.priority, g.admitted))
            self._preempt(victim)

    def _preempt(self, g: Generation) -> None:
        """Take `g` out of its slice (to recompute later): its KV is dropped and its
        pages go back; its tokens so far join its prompt, so it resumes where it was."""
        self._active.pop(g.seq)
        ll.llama_memory_seq_rm(self.memory, g.seq, -1, -1)
        self.kv.release(g.seq)
        heapq.heappush(self._free, g.seq)
        g.requeue()
        self._waiting.insert(0, g)
        self.preemptions += 1

    def _step(self) -> None:
        for generation in [g for g in self._active.values() if g.cancelled]:
            self._finish(generation)
        self._admit()
        if not self._active:
            return
        self._keep_within_budget()
        active = [self._active[seq] for seq in sorted(self._active)]
        decoding = [g for g in active if g.prefilled == len(g.prompt)]
        # Prompt tokens of new sequences, as many as fit beside one token of every
        # generating sequence (all keep moving): a call for each run of consecutive ids.
        room = self.n_batch - len(decoding)
        for run in runs([g for g in active if g.prefilled < len(g.prompt)]):
            if room < 2:
                break
            room -= self._calls.prefill(run, room, self._prefilled)
        if decoding:
            self._calls.decode(decoding, self._active)
            for g in decoding:
                self._sample(g)
        for g in active:
            self.kv.wrote(g.seq, g.n_past)  # a copied prefix included
        for seq, cells in self._calls.drain_touched():  # throwaway tokens included
            self.kv.wrote(seq, cells)
        self.kv.note_peak()
        self.steps += 1

    def _prefilled(self, g: Generation) -> None:
        """After a prefill call: keep a prefix at a breakpoint; sample if the prompt is in."""
        if self._prefixes is not None:
            self._prefixes.keep_breakpoint(g)
        if g.logit_index >= 0:
            self._sample(g)

    def _should_wait(self, g: Generation) -> bool:
        """Whether `g` waits for a prompt still prefilling whose KV it will then copy."""
        return self._prefixes is not None and self._prefixes.should_wait(g, self._active.values())

    def _sample(self, g: Generation) -> None:
        if self._tokens.take(g):
            self._finish(g)

    def _finish(self, g: Generation) -> None:
        self._active.pop(g.seq, None)
        if self._prefixes is not None and not g.cancelled and g.error is None and g.seq >= 0:
            self._prefixes.keep(g, keep_for=0.0)  # for a follow-up turn, or prompts that share it
        ll.llama_memory_seq_rm(self.memory, g.seq, -1, -1)
        self._free_samplers(g)
        heapq.heappush(self._free, g.seq)
        g.text = bytes(g.out).decode(errors="replace")
        if g.on_text is not None:
            emit(g, final=True)
        g.done(g)

    @staticmethod
    def _free_samplers(g: Generation) -> None:
        if g.sampler is not None:
            ll.llama_sampler_free(g.sampler)
            g.sampler = None
        if g.grammar_sampler is not None:
            ll.llama_sampler_free(g.grammar_sampler)
            g.grammar_sampler = None
