"""One request as the llama.cpp runtime sees it: its prompt, sampling and answer shape,
what it produced, and the runtime's state of it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


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
    trigger: str | None = None
    """The grammar applies from this text on (llama.cpp's lazy grammar): the text before
    it is free, and streamed text holds back what may be its start."""
    priority: int = 1
    """Lower is admitted first when sequences wait for a free slot (interactive 0, batch 1)."""
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
    prompt_length: int = -1
    """Tokens of the prompt as sent (the prompt grows by the answer so far if the
    sequence is preempted)."""
    # runtime state
    resumed: bool = False
    """Preempted once at least: its answer so far is in `prompt`, to prefill again."""
    kept_upto: int = 0
    """The furthest `cache_control` breakpoint whose prefix it has kept."""
    admitted: int = 0
    """When it got its slice (the runtime's count): the last admitted go first."""
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

    def __post_init__(self) -> None:
        if self.prompt_length < 0:
            self.prompt_length = len(self.prompt)

    def requeue(self) -> None:
        """Out of its slice: what it has generated joins its prompt (the last sampled token
        too, whose logits pick the next one), to prefill on its next admission."""
        if self.last_token >= 0:
            self.prompt = [*self.prompt, *self.decoded, self.last_token]
            self.last_token = -1
        self.decoded = []
        self.prefilled = self.n_past = 0
        self.logit_index = -1
        self.seq = -1
        self.resumed = True

    def kv_tokens(self) -> list[int]:
        """The tokens whose KV this sequence holds, from position 0."""
        return self.prompt[: self.prefilled] + self.decoded
