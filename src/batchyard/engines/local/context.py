"""A llama.cpp model loaded, and a context laid out for the runtime's sequences."""

from __future__ import annotations

import ctypes
import functools
import logging
from pathlib import Path
from typing import Any

import llama_cpp as ll

from batchyard.engines.local.kv_memory import make_and_release
from batchyard.engines.local.kv_pool import KvLayout

log = logging.getLogger("batchyard.llama")


def load_model(model_path: str | Path) -> Any:
    """The model in a GGUF file (llama.cpp's backend set up first); raises RuntimeError if
    llama.cpp cannot load it."""
    ll.llama_backend_init()
    mparams = ll.llama_model_default_params()
    model = ll.llama_model_load_from_file(str(model_path).encode(), mparams)
    if not model:
        raise RuntimeError(f"llama.cpp could not load {model_path}")
    return model


def new_context(
    model: Any, *, n_seq: int, n_ctx_seq: int, n_batch: int, threads: int, flash: bool
) -> tuple[Any, tuple[int, int] | None]:
    """A context for `model`, and the memory chunk of its KV cache, whose pages went back
    to the system until used (`kv_memory.make_and_release`; None if it was not found);
    raises RuntimeError if there is none."""
    cparams = _params(
        n_seq=n_seq, n_ctx_seq=n_ctx_seq, n_batch=n_batch, threads=threads, flash=flash
    )
    ctx, chunk = make_and_release(
        lambda: ll.llama_init_from_model(model, cparams), lambda made: _kv_bytes(model, made)
    )
    if not ctx:
        raise RuntimeError("llama.cpp could not create a context")
    return ctx, chunk


@functools.cache
def invariant_attention_probe() -> Any:
    """`ggml_cpu_flash_attn_batch_invariant` of this llama.cpp's CPU backend, if it has
    the kernel of `patches/llama.cpp` (which `make install` builds in); else None."""
    base = Path(ll.llama_cpp._base_path)
    for path in sorted(base.glob("*ggml-cpu*")):
        try:
            lib = ctypes.CDLL(str(path))
        except OSError:
            continue
        probe = getattr(lib, "ggml_cpu_flash_attn_batch_invariant", None)
        if probe is not None:
            probe.argtypes = [ctypes.c_int64] * 4
            probe.restype = ctypes.c_int
            return probe
    return None


def batch_invariant_attention(model: Any) -> bool:
    """Whether `model`'s flash attention runs on the batch-invariant kernel of
    `patches/llama.cpp`: a query row's result then never depends on the shape of its
    call, so a prompt may be prefilled in pieces of any size. Not where this llama.cpp
    lacks the kernel (a llama-cpp-python from elsewhere) or the model's heads do not
    take it (keys wider than values, over 64 query heads a KV head): the runtime then
    keeps pieces under `calls.FLASH_TILE_ROWS`."""
    probe = invariant_attention_probe()
    if probe is None:
        return False
    dk, dv = _head_sizes(model)
    n_head, n_head_kv = ll.llama_model_n_head(model), ll.llama_model_n_head_kv(model)
    return bool(probe(n_head, n_head_kv, dk, dv) == 1)


def kv_layout(model: Any, *, n_stream: int, cells: int, flash: bool) -> KvLayout:
    """How a context's KV cache for `model` is laid out (F16 keys and values, a slice per
    stream)."""
    k_row, v_row = _row_bytes(model)
    return KvLayout(
        n_layer=int(ll.llama_model_n_layer(model)),
        n_stream=n_stream,
        cells=cells,
        k_row=k_row,
        v_row=v_row,
        v_trans=not flash,
    )


def _row_bytes(model: Any) -> tuple[int, int]:
    """Bytes of one cell's keys and of its values in one layer, at F16: KV heads x head
    size."""
    kv_heads = int(ll.llama_model_n_head_kv(model))
    dk, dv = _head_sizes(model)
    return kv_heads * dk * 2, kv_heads * dv * 2


def _head_sizes(model: Any) -> tuple[int, int]:
    """The size of a key head and of a value head: the model's own `key_length` /
    `value_length` where it says them, else n_embd/n_head."""
    default = int(ll.llama_model_n_embd(model) // ll.llama_model_n_head(model))
    arch = model_meta(model, "general.architecture")
    sizes = []
    for key in ("key_length", "value_length"):
        value = model_meta(model, f"{arch}.attention.{key}") if arch else None
        sizes.append(int(value) if value and value.isdigit() else default)
    return sizes[0], sizes[1]


def model_meta(model: Any, key: str) -> str | None:
    """A value of the model's GGUF metadata (None if it has no such key)."""
    buf = ctypes.create_string_buffer(1 << 16)  # a chat template can be long
    n = ll.llama_model_meta_val_str(model, key.encode(), buf, len(buf))
    return buf.value.decode() if n >= 0 else None


def slice_tokens(ctx: Any, asked: int) -> int:
    """How many tokens a sequence's slice of `ctx` holds (`asked`, where this llama.cpp
    cannot tell)."""
    return ll.llama_n_ctx_seq(ctx) if hasattr(ll, "llama_n_ctx_seq") else asked


def _params(*, n_seq: int, n_ctx_seq: int, n_batch: int, threads: int, flash: bool) -> Any:
    """A context of `n_seq` slices of `n_ctx_seq` tokens each, plus a spare sequence (for
    the padding of `PaddedCalls.decode`), computing `n_batch` tokens a call in one piece."""
    cparams = ll.llama_context_default_params()
    cparams.n_ctx = n_ctx_seq * (n_seq + 1)
    cparams.n_batch = n_batch
    cparams.n_ubatch = n_batch
    cparams.n_seq_max = n_seq + 1
    cparams.n_threads = threads
    cparams.n_threads_batch = threads
    cparams.kv_unified = False
    cparams.flash_attn_type = (
        ll.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash else ll.LLAMA_FLASH_ATTN_TYPE_DISABLED
    )
    cparams.no_perf = True
    return cparams


def _kv_bytes(model: Any, ctx: Any) -> int:
    """The size of the KV cache llama.cpp allocates for `ctx` (F16 keys and values)."""
    if not ctx:
        return 0
    return kv_layout(model, n_stream=1, cells=ll.llama_n_ctx(ctx), flash=True).total


@ll.llama_log_callback  # type: ignore[untyped-decorator]
def _quiet(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    if log.isEnabledFor(logging.DEBUG):
        log.debug(text.decode(errors="replace").rstrip())


def quiet_llama() -> None:
    """llama.cpp's own logging goes to our logger at debug level, not to stderr."""
    ll.llama_log_set(_quiet, ctypes.c_void_p(0))


def llamafile_kernels() -> bool:
    """Whether this llama.cpp build has llamafile's matrix kernels (about twice as fast
    on x86 as ggml's own: bench/runtime.py)."""
    return b"LLAMAFILE = 1" in ll.llama_print_system_info()
