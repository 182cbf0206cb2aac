"""The same measurement as bench/runtime.py on a torch fp32 runtime (transformers), for
comparison: prefill of a 256-token prompt per sequence, then 32 decode steps of every
sequence together, at 1, 8 and 32 sequences, 2 threads.

It runs in the vLLM venv (`make vllm`: torch and transformers, and the shipped SmolLM2
converted to the Hugging Face format); bench/runtime.py starts it when that is there.

    .venv/vllm/bin/python bench/torch_runtime.py .venv/vllm-models/smollm2-135m
"""

from __future__ import annotations

import sys
import time

import torch
from transformers import AutoModelForCausalLM

PROMPT = 256
STEPS = 32


def measure(model: object, n_seq: int) -> tuple[float, float]:
    prompt = torch.tensor([[100 + (k * 7 + s) % 5000 for k in range(PROMPT)] for s in range(n_seq)])
    with torch.inference_mode():
        t = time.perf_counter()
        out = model(input_ids=prompt, use_cache=True)  # type: ignore[operator]
        prefill = n_seq * PROMPT / (time.perf_counter() - t)
        past = out.past_key_values
        token = out.logits[:, -1:].argmax(-1)
        t = time.perf_counter()
        for _ in range(STEPS):
            out = model(input_ids=token, past_key_values=past, use_cache=True)  # type: ignore[operator]
            past = out.past_key_values
            token = out.logits[:, -1:].argmax(-1)
        decode = n_seq * STEPS / (time.perf_counter() - t)
    return prefill, decode


def main() -> None:
    torch.set_num_threads(2)
    model = AutoModelForCausalLM.from_pretrained(sys.argv[1], torch_dtype=torch.float32)
    model.eval()
    measure(model, 1)  # warm-up
    for n_seq in (1, 8, 32):
        prefill, decode = measure(model, n_seq)
        print(
            f"{n_seq:2d} seq  torch fp32 (transformers, eager) prefill {prefill:6.0f} tok/s  decode {decode:6.0f} tok/s"
        )


if __name__ == "__main__":
    main()
