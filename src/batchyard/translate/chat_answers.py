"""The answers of the OpenAI dialect: the engine's Message (or its stream of events) as
a `chat.completion` (or `chat.completion.chunk`s).

Serving Chat Completions on the Messages engines is the other direction of
`translate/messages_to_chat.py` (a Messages request on an OpenAI-compatible server):
the request side is `translate/chat_to_messages.py`, the answer side this module.
"""

from __future__ import annotations

import json
import time
from typing import Any

import msgspec

from batchyard.wire.messages import Message, TextContent, ThinkingContent, ToolUseContent, Usage
from batchyard.wire.streaming import (
    ContentBlockDelta,
    ContentBlockStart,
    InputJsonDelta,
    MessageDelta,
    MessageStart,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    merge_delta_usage,
)

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
}


def _tool_call(block: ToolUseContent, index: int) -> dict[str, Any]:
    return {
        "index": index,
        "id": block.id,
        "type": "function",
        "function": {"name": block.name, "arguments": json.dumps(block.input)},
    }


def chat_completion(message: Message, model: str) -> dict[str, Any]:
    """The engine's Message as a `chat.completion` object."""
    text = "".join(b.text for b in message.content if isinstance(b, TextContent))
    calls = [b for b in message.content if isinstance(b, ToolUseContent)]
    reply: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None}
    thinking = "".join(b.thinking for b in message.content if isinstance(b, ThinkingContent))
    if thinking:  # where vLLM and SGLang put a reasoning model's thinking
        reply["reasoning_content"] = thinking
    if calls:
        reply["tool_calls"] = [
            {k: v for k, v in _tool_call(b, i).items() if k != "index"} for i, b in enumerate(calls)
        ]
    usage = message.usage
    return {
        "id": f"chatcmpl-{message.id.removeprefix('msg_')}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": reply,
                "finish_reason": FINISH_REASONS.get(message.stop_reason or "", "stop"),
                "logprobs": None,
            }
        ],
        "usage": chat_usage(usage),
        "system_fingerprint": None,
    }


def chat_usage(usage: Usage) -> dict[str, Any]:
    """Chat Completions usage: `prompt_tokens` is the whole prompt, cached part included."""
    cached = usage.cache_read_input_tokens or 0
    prompt = usage.input_tokens + cached + (usage.cache_creation_input_tokens or 0)
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": usage.output_tokens,
        "total_tokens": prompt + usage.output_tokens,
    }
    if usage.cache_read_input_tokens is not None:  # only an engine that knows says so
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    return out


class ChunkTranslator:
    """Messages stream events → `chat.completion.chunk` objects."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.model = model
        self.include_usage = include_usage
        self.id = "chatcmpl-"
        self.created = int(time.time())
        self.tool_index = -1
        self.usage = Usage(input_tokens=0, output_tokens=0)

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }

    def feed(self, event: StreamEvent) -> list[dict[str, Any]]:
        if isinstance(event, MessageStart):
            self.id = f"chatcmpl-{event.message.id.removeprefix('msg_')}"
            self.usage = msgspec.structs.replace(event.message.usage)
            return [self._chunk({"role": "assistant", "content": ""})]
        if isinstance(event, ContentBlockStart) and isinstance(event.content_block, ToolUseContent):
            self.tool_index += 1
            call = _tool_call(event.content_block, self.tool_index)
            call["function"]["arguments"] = ""
            return [self._chunk({"tool_calls": [call]})]
        if isinstance(event, ContentBlockDelta):
            if isinstance(event.delta, TextDelta):
                return [self._chunk({"content": event.delta.text})]
            if isinstance(event.delta, ThinkingDelta):
                return [self._chunk({"reasoning_content": event.delta.thinking})]
            if isinstance(event.delta, InputJsonDelta):
                call = {
                    "index": self.tool_index,
                    "function": {"arguments": event.delta.partial_json},
                }
                return [self._chunk({"tool_calls": [call]})]
        if isinstance(event, MessageDelta):
            finish = FINISH_REASONS.get(event.delta.stop_reason or "", "stop")
            chunks = [self._chunk({}, finish)]
            merge_delta_usage(self.usage, event.usage)
            if self.include_usage:
                chunk = self._chunk({})
                chunk["choices"] = []
                chunk["usage"] = chat_usage(self.usage)
                chunks.append(chunk)
            return chunks
        return []
