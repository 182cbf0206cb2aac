"""Convert a GGUF model to the Hugging Face folder vLLM loads, once (run by scripts/vllm.sh
with the vLLM venv's python, which has transformers, gguf and accelerate; offline).

    python scripts/vllm_weights.py GGUF TARGET_DIR

transformers dequantizes the GGUF's tensors to float32 on load and records the GGUF as
the model's `quantization_config`; that marker is dropped before saving, or vLLM would
look for a GGUF in the folder. Kept in float32 (the dequantized values exactly), which
tests/vllm.py serves as such: on this CPU (AVX2, no AVX-512) vLLM's bfloat16 is ~4x
slower. The tokenizer (its chat template included) comes from the same file. The folder
is written beside TARGET_DIR and renamed into place, with a marker naming the source, so
an interrupted run leaves nothing half-written and a finished one is not redone.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

MARKER = "batchyard-source.txt"


def source_id(gguf: Path) -> str:
    return f"{gguf.name} {gguf.stat().st_size}\n"


def converted(gguf: Path, target: Path) -> bool:
    marker = target / MARKER
    return marker.exists() and marker.read_text() == source_id(gguf)


def convert(gguf: Path, target: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    del model.config.quantization_config
    model.hf_quantizer = None
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    (partial / MARKER).write_text(source_id(gguf))
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)


def main() -> None:
    gguf, target = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    if converted(gguf, target):
        return
    started = time.monotonic()
    target.parent.mkdir(parents=True, exist_ok=True)
    convert(gguf, target)
    print(
        f"converted {gguf.name} to {target} in {time.monotonic() - started:.0f}s", file=sys.stderr
    )


if __name__ == "__main__":
    main()
