"""Structured outputs on the embedded runtime: what enforcing a schema costs.

1. Throughput of a 32-sequence batch, the same 32 prompts with and without a grammar,
   in one process (the goal: constrained at 0.8 of free or better). A schema's JSON
   ends when it is whole, so each free sequence is given as many tokens as its
   constrained twin wrote: the same work, with and without the grammar. The prompts'
   prefill (a run with `max_tokens` 1) is taken off for the decode's own rate.
2. How often the model's own pick broke the grammar, and how often the best 64 tokens
   held no allowed one (a full-vocabulary pass).
3. What a request's schema costs to compile: JSON schema → GBNF (cold, then cached,
   as in a 100k batch with one schema), and llama.cpp's parse (cold, then a clone of
   the parsed grammar, which is what each sequence gets).

    PYTHONPATH=. .venv/bin/python -m bench.structured
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import llama_cpp as ll

from batchyard.engines.local.engine import f16_weights, shipped_weights
from batchyard.engines.local.generation import Generation, Sampling
from batchyard.engines.local.runtime import LlamaRuntime
from batchyard.grammar import json_schema as js

N_SEQ = 32
MAX_TOKENS = 48
SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "mood": {"enum": ["happy", "sad", "tense"]},
        "story": {"type": "string"},
    },
    "required": ["title", "mood", "story"],
    "additionalProperties": False,
}
TOPICS = [
    "a lighthouse", "a lost cat", "the first snow", "a broken clock", "a market day",
    "a long train ride", "an old map", "a quiet library", "a summer storm", "a red kite",
    "the last bus", "a garden at night", "a shy robot", "a river crossing", "a birthday cake",
    "a mountain hut",
]  # fmt: skip


def prompt(topic: str) -> str:
    return (
        "<|im_start|>system\nYou write very short stories. Reply with a JSON object with a"
        f" title, a mood and the story.<|im_end|>\n<|im_start|>user\nA story about {topic}."
        "<|im_end|>\n<|im_start|>assistant\n"
    )


def run_batch(
    rt: LlamaRuntime, grammar: str | None, lengths: list[int] | None = None
) -> tuple[float, list[int]]:
    texts = [prompt(TOPICS[i % len(TOPICS)]) + " " * (i // len(TOPICS)) for i in range(N_SEQ)]
    events = [threading.Event() for _ in texts]
    gens = [
        Generation(
            prompt=rt.tokenize(t, add_special=False),
            max_tokens=lengths[i] if lengths else MAX_TOKENS,
            stop=[],
            sampling=Sampling(temperature=0),
            done=lambda g, e=e: e.set(),  # type: ignore[misc]
            grammar=grammar,
        )
        for i, (t, e) in enumerate(zip(texts, events, strict=True))
    ]
    started = time.perf_counter()
    for g in gens:
        rt.submit(g)
    for e in events:
        e.wait()
    return time.perf_counter() - started, [g.output_tokens for g in gens]


def compile_costs(rt: LlamaRuntime) -> None:
    js._cache.clear()
    t = time.perf_counter()
    grammar = js.json_schema_grammar(SCHEMA)
    cold = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(1000):
        js.json_schema_grammar(SCHEMA)
    warm = (time.perf_counter() - t) / 1000
    vocab = rt.vocab
    t = time.perf_counter()
    parsed = ll.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
    parse = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(1000):
        ll.llama_sampler_free(ll.llama_sampler_clone(parsed))
    clone = (time.perf_counter() - t) / 1000
    ll.llama_sampler_free(parsed)
    print(f"schema → GBNF: {cold * 1e3:.2f} ms cold, {warm * 1e6:.1f} µs cached")
    print(f"llama.cpp grammar: {parse * 1e3:.2f} ms to parse, {clone * 1e6:.1f} µs a clone")


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        weights = f16_weights(shipped_weights(), Path(d))
        rt = LlamaRuntime(weights, n_seq=N_SEQ, n_ctx_seq=256, n_threads=2, prefix_cache_bytes=0)
        try:
            grammar = js.json_schema_grammar(SCHEMA)
            run_batch(rt, None)  # warm-up
            prefill_s, _ = run_batch(rt, None, [1] * N_SEQ)
            c = rt.candidates
            asked, top, full = c.asked, c.top_passes, c.full_passes
            shaped_s, lengths = run_batch(rt, grammar)
            asked, top, full = c.asked - asked, c.top_passes - top, c.full_passes - full
            free_s, free_lengths = run_batch(rt, None, lengths)
            print(f"{N_SEQ} sequences, up to {MAX_TOKENS} tokens each, temperature 0")
            print(f"  prefill of the prompts (max_tokens 1): {prefill_s:.2f} s")
            rates = []
            for name, took, tokens in (
                ("with schema", shaped_s, sum(lengths)),
                ("free text", free_s, sum(free_lengths)),
            ):
                whole, decode = tokens / took, (tokens - N_SEQ) / (took - prefill_s)
                rates.append((whole, decode))
                print(
                    f"  {name:12s} {tokens:5d} tokens in {took:6.2f} s: {whole:6.1f} tok/s,"
                    f" decode alone {decode:6.1f} tok/s"
                )
            (shaped_whole, shaped_decode), (free_whole, free_decode) = rates
            print(
                f"  with schema / free: {shaped_decode / free_decode:.2f}x decode,"
                f" {shaped_whole / free_whole:.2f}x whole run"
            )
            print(
                f"  grammar: {asked} picks checked, {top} refused and answered from the"
                f" best {c.TOP}, {full} full-vocabulary passes"
            )
            compile_costs(rt)
        finally:
            rt.close()


if __name__ == "__main__":
    main()
