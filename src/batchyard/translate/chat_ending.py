"""How a Chat Completion ended and what it used, as a Message's stop_reason and usage."""

from __future__ import annotations

from typing import Any

from batchyard.wire.messages import MessageCreateParams, StopReason, Usage

_FINISH: dict[str, StopReason] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def stop_of(
    finish: Any, matched: Any, params: MessageCreateParams
) -> tuple[StopReason, str | None]:
    """(`stop_reason`, `stop_sequence`) for a `finish_reason` and vLLM's `stop_reason`
    (the stop string that ended the text)."""
    stop_reason = _FINISH.get(finish or "stop", "end_turn")
    stops = params.stop_sequences or []
    if stop_reason == "end_turn" and isinstance(matched, str) and matched in stops:
        return "stop_sequence", matched
    return stop_reason, None


def usage_from_chat(usage: dict[str, Any]) -> Usage:
    """An upstream's Chat Completions usage as Messages usage: the prompt tokens it says
    it served from its prefix cache (`prompt_tokens_details.cached_tokens`, as vLLM and
    SGLang report them) are `cache_read_input_tokens`; an upstream that says nothing of
    its cache gets no cache figure."""
    prompt = int(usage.get("prompt_tokens", 0))
    details = usage.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    read = min(int(cached), prompt) if isinstance(cached, int) else None
    return Usage(
        input_tokens=prompt - (read or 0),
        output_tokens=int(usage.get("completion_tokens", 0)),
        cache_read_input_tokens=read,
    )
