"""Reasoning on OpenAI-compatible servers: the controls a request sets, the text a reply carries."""

from __future__ import annotations

from typing import Any

from batchyard.wire.messages import MessageCreateParams

_EFFORT = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}
"""`output_config.effort` → `reasoning_effort`, which stops at "high"."""


def reasoning_controls(params: MessageCreateParams) -> dict[str, Any]:
    """`thinking` and `output_config.effort` as the upstream's reasoning controls.

    On or off is the chat template's `enable_thinking` (Qwen3-style templates in vLLM
    and SGLang; a template without it ignores it). `budget_tokens` is vLLM's
    `thinking_token_budget` (a per-request sampling parameter, enforced when the server
    runs with `--reasoning-parser`; see vLLM's docs/features/reasoning_outputs.md,
    "Thinking Budget Control"). Most servers ignore a key they lack; one that refuses
    it is asked again without it (`engines/remote/openai_compat.py`).
    """
    controls: dict[str, Any] = {}
    if params.thinking:
        enabled = params.thinking.get("type") != "disabled"  # enabled, adaptive, between_tools
        controls["chat_template_kwargs"] = {"enable_thinking": enabled}
        budget = params.thinking.get("budget_tokens")
        if enabled and isinstance(budget, int):
            controls["thinking_token_budget"] = budget
    effort = params.output_config.effort if params.output_config else None
    if effort is not None:
        controls["reasoning_effort"] = _EFFORT[effort]
    return controls


def reasoning_of(message: dict[str, Any]) -> str:
    """The reasoning text of a reply or stream delta: `reasoning_content` (SGLang,
    llama-server, older vLLM) or `reasoning` (newer vLLM). One, not both: vLLM sent
    the same text under both names while it renamed the field."""
    for key in ("reasoning_content", "reasoning"):
        value = message.get(key)
        if isinstance(value, str) and value:
            return value
    return ""
