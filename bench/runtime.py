"""llama.cpp runtime settings side by side: prefill and decode tokens/s at 1, 8 and 32 sequences.

Each setting gets a fresh context on the same F16 SmolLM2 weights and 2 threads:
every sequence prefills a 256-token prompt (in one piece, or in pieces of 63),
then all decode 64 steps together; three rounds of every setting, interleaved, and
the faster of each is printed. Settings: KV per sequence (llama.cpp's
streams, what batchyard uses) or one unified pool; flash attention on or off.
batchyard runs streams with flash attention on: with the batch-invariant kernel
of patches/llama.cpp (what `make install` builds) in pieces of any size, with
llama.cpp's own kernel in pieces under 64 rows, so that only its row-by-row loop
runs; or with flash attention off (`--no-flash-attention`): either way a
sequence's numbers never depend on the batch (see engines/local/runtime.py). The
default setting runs on Q8_0 weights too (converted from the F16 ones), and when
the vLLM venv is there (`make vllm`), a torch fp32 runtime (bench/torch_runtime.py)
runs the same measurement. In brackets: the ratio to the fastest F16 llama.cpp
setting at that row (Q8_0, converted from the shipped Q4_1 through F16, answers
"What is the capital of France?" with "L'Étoile, la Cité, ..." at temperature 0:
not a choice for the default). Whether this llama.cpp has llamafile kernels is
printed (a build flag: compare two builds by running this in each).

    PYTHONPATH=. .venv/bin/python -m bench.runtime
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import llama_cpp as ll

from batchyard.engines.local.calls import FLASH_TILE_ROWS
from batchyard.engines.local.context import (
    batch_invariant_attention,
    llamafile_kernels,
    quiet_llama,
)
from batchyard.engines.local.engine import converted_weights, f16_weights, shipped_weights

PROMPT = 256
STEPS = 64
ROUNDS = 3
WHOLE = ("streams, flash attn on, whole pieces", False, True, PROMPT)
PIECES = ("streams, flash attn on, 63-row pieces", False, True, FLASH_TILE_ROWS - 1)


def settings(invariant: bool) -> list[tuple[str, bool, bool, int]]:
    """name, unified KV, flash attention, prompt piece; batchyard's default first (whole
    pieces with the batch-invariant kernel, 63-row ones with llama.cpp's own)."""
    default, other = (WHOLE, PIECES) if invariant else (PIECES, WHOLE)
    return [
        (f"{default[0]} (batchyard's default)", *default[1:]),
        ("streams, flash attn off (--no-flash-attention)", False, False, PROMPT),
        other,
        ("unified, flash attn on", True, True, PROMPT),
        ("unified, flash attn off", True, False, PROMPT),
    ]


def measure(model: Any, n_seq: int, unified: bool, flash: bool, piece: int) -> tuple[float, float]:
    p = ll.llama_context_default_params()
    p.n_ctx = n_seq * 1024
    p.n_batch = p.n_ubatch = 512
    p.n_seq_max = n_seq
    p.n_threads = p.n_threads_batch = 2
    p.kv_unified = unified
    p.no_perf = True
    p.flash_attn_type = (
        ll.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash else ll.LLAMA_FLASH_ATTN_TYPE_DISABLED
    )
    ctx = ll.llama_init_from_model(model, p)
    batch = ll.llama_batch_init(512, 0, 1)

    def add(token: int, pos: int, seq: int, logits: bool) -> None:
        i = batch.n_tokens
        batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, 1
        batch.seq_id[i][0], batch.logits[i] = seq, logits
        batch.n_tokens = i + 1

    try:
        t = time.perf_counter()
        for s in range(n_seq):
            for start in range(0, PROMPT, piece):
                batch.n_tokens = 0
                for k in range(start, min(start + piece, PROMPT)):
                    add(100 + (k * 7 + s) % 5000, k, s, k == PROMPT - 1)
                assert ll.llama_decode(ctx, batch) == 0
        prefill = n_seq * PROMPT / (time.perf_counter() - t)
        t = time.perf_counter()
        for step in range(STEPS):
            batch.n_tokens = 0
            for s in range(n_seq):
                add(200 + step, PROMPT + step, s, True)
            assert ll.llama_decode(ctx, batch) == 0
        decode = n_seq * STEPS / (time.perf_counter() - t)
    finally:
        ll.llama_batch_free(batch)
        ll.llama_free(ctx)
    return prefill, decode


def main() -> None:
    quiet_llama()
    ll.llama_backend_init()
    path = f16_weights(shipped_weights(), Path(tempfile.mkdtemp(prefix="bench-runtime-")))
    model = ll.llama_model_load_from_file(str(path).encode(), ll.llama_model_default_params())
    q8 = ll.llama_model_load_from_file(
        str(converted_weights(path, path.parent, "Q8_0")).encode(), ll.llama_model_default_params()
    )
    invariant = batch_invariant_attention(model)
    print(
        f"llamafile kernels: {'ON' if llamafile_kernels() else 'off'}; batch-invariant flash"
        f" attention (patches/llama.cpp): {'ON' if invariant else 'off'}; F16 SmolLM2-135M,"
        " 2 threads"
    )
    rows_of = settings(invariant)
    name, u, f, p = rows_of[0]
    runs = [(n, model, *rest) for n, *rest in rows_of] + [(f"Q8_0 {name}", q8, u, f, p)]
    for n_seq in (1, 8, 32):
        best: dict[str, tuple[float, float]] = {}
        for _ in range(ROUNDS):  # interleaved, the best of each: the machine's speed drifts
            for name, weights, u, f, p in runs:
                prefill, decode = measure(weights, n_seq, u, f, p)
                old = best.get(name, (0.0, 0.0))
                best[name] = (max(old[0], prefill), max(old[1], decode))
        rows = [(name, *speeds) for name, speeds in best.items()]
        # the ratios are to the best F16 setting: Q8_0 answers the France question wrong
        best_p = max(r[1] for r in rows if not r[0].startswith("Q8_0"))
        best_d = max(r[2] for r in rows if not r[0].startswith("Q8_0"))
        for name, prefill, decode in rows:
            print(
                f"{n_seq:2d} seq  {name:56s} prefill {prefill:6.0f} tok/s ({prefill / best_p:.2f})"
                f"  decode {decode:6.0f} tok/s ({decode / best_d:.2f})"
            )
    ll.llama_model_free(model)
    ll.llama_model_free(q8)
    torch_python = Path(".venv/vllm/bin/python")
    hf_model = Path(".venv/vllm-models/smollm2-135m")
    if torch_python.exists() and hf_model.exists():
        here = Path(__file__).with_name("torch_runtime.py")
        subprocess.run([str(torch_python), str(here), str(hf_model)], check=False)
    else:
        print("torch: no vLLM venv (make vllm); skipped")


if __name__ == "__main__":
    main()
