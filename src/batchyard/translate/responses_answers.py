"""The answers of the OpenAI Responses API: the engine's Message as a `response` object,
and its stream of Messages events as the Responses stream events (`response.created`,
`response.output_item.added`, `response.output_text.delta`, …, `response.completed`),
each with its `sequence_number`.

Output items: text → a `message` item with one `output_text` part; a `tool_use` block
→ a `function_call` item (`call_id` is the block's id); thinking → a `reasoning` item.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from batchyard.wire.messages import Message, TextContent, ThinkingContent, ToolUseContent, Usage
from batchyard.wire.streaming import (
    ContentBlockDelta,
    ContentBlockStart,
    ContentBlockStop,
    InputJsonDelta,
    MessageDelta,
    MessageStart,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    merge_delta_usage,
)


def new_id(prefix: str) -> str:
    """An id in OpenAI's form: `resp_…`, `msg_…`, `fc_…`, `rs_…`."""
    return f"{prefix}_{secrets.token_hex(24)}"


def response_usage(usage: Usage) -> dict[str, Any]:
    """Responses usage: `input_tokens` is the whole prompt, its cached part included."""
    cached = usage.cache_read_input_tokens or 0
    written = usage.cache_creation_input_tokens or 0
    prompt = usage.input_tokens + cached + written
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + usage.output_tokens,
    }


def _text_item(text: str, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "message",
        "id": new_id("msg"),
        "status": status,
        "role": "assistant",
        "content": [_text_part(text)] if status == "completed" else [],
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _call_item(block: ToolUseContent, arguments: str | None = None) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": new_id("fc"),
        "call_id": block.id,
        "name": block.name,
        "arguments": json.dumps(block.input) if arguments is None else arguments,
        "status": "completed",
    }


def _reasoning_item(text: str) -> dict[str, Any]:
    return {
        "type": "reasoning",
        "id": new_id("rs"),
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}],
    }


def output_items(message: Message) -> list[dict[str, Any]]:
    """The output items of an answer."""
    items: list[dict[str, Any]] = []
    for block in message.content:
        if isinstance(block, TextContent):
            items.append(_text_item(block.text))
        elif isinstance(block, ToolUseContent):
            items.append(_call_item(block))
        elif isinstance(block, ThinkingContent):
            items.append(_reasoning_item(block.thinking))
    return items


def _incomplete(stop_reason: str | None) -> dict[str, Any] | None:
    if stop_reason in ("max_tokens", "model_context_window_exceeded"):
        return {"reason": "max_output_tokens"}
    if stop_reason == "refusal":
        return {"reason": "content_filter"}
    return None


class ResponseShell:
    """What a `response` object says of its request (the same in every event)."""

    def __init__(self, body: dict[str, Any], model: str, response_id: str | None = None) -> None:
        self.id = response_id or new_id("resp")
        self.created_at = int(time.time())
        text = body.get("text") or {}
        reasoning = body.get("reasoning") or {}
        self.fields: dict[str, Any] = {
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "metadata": body.get("metadata") or {},
            "model": model,
            "parallel_tool_calls": body.get("parallel_tool_calls", True) is not False,
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": reasoning.get("effort"), "summary": None},
            "store": body.get("store", True) is not False,
            "temperature": body.get("temperature"),
            "text": {"format": text.get("format") or {"type": "text"}, "verbosity": "medium"},
            "tool_choice": body.get("tool_choice") or "auto",
            "tools": body.get("tools") or [],
            "top_p": body.get("top_p"),
            "truncation": body.get("truncation") or "disabled",
            "user": body.get("user"),
        }

    def response(
        self,
        status: str,
        output: list[dict[str, Any]],
        usage: Usage | None = None,
        stop_reason: str | None = None,
    ) -> dict[str, Any]:
        incomplete = _incomplete(stop_reason) if status != "in_progress" else None
        if incomplete is not None:
            status = "incomplete"
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "completed_at": int(time.time()) if status == "completed" else None,
            "error": None,
            "incomplete_details": incomplete,
            "output": output,
            "usage": response_usage(usage) if usage is not None else None,
            **self.fields,
        }


def response_object(shell: ResponseShell, message: Message) -> dict[str, Any]:
    """A whole answer as a `response` object."""
    return shell.response("completed", output_items(message), message.usage, message.stop_reason)


class ResponseStream:
    """Messages stream events → Responses stream events; `final` is the whole response
    once the stream has ended."""

    def __init__(self, shell: ResponseShell) -> None:
        self.shell = shell
        self.sequence = 0
        self.output: list[dict[str, Any]] = []
        self.usage = Usage(input_tokens=0, output_tokens=0)
        self.stop_reason: str | None = None
        self.final: dict[str, Any] | None = None
        self._item: dict[str, Any] | None = None
        self._text: list[str] = []
        self._block: Any = None

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event

    def start(self) -> list[dict[str, Any]]:
        shell = self.shell.response("in_progress", [])
        return [
            self._event("response.created", response=shell),
            self._event("response.in_progress", response=shell),
        ]

    def feed(self, event: StreamEvent) -> list[dict[str, Any]]:
        if isinstance(event, MessageStart):
            self.usage = event.message.usage
            return []
        if isinstance(event, ContentBlockStart):
            return self._open(event.content_block)
        if isinstance(event, ContentBlockDelta):
            return self._delta(event.delta)
        if isinstance(event, ContentBlockStop):
            return self._close()
        if isinstance(event, MessageDelta):
            self.stop_reason = event.delta.stop_reason
            merge_delta_usage(self.usage, event.usage)
        return []

    def _open(self, block: Any) -> list[dict[str, Any]]:
        self._block, self._text = block, []
        index = len(self.output)
        if isinstance(block, TextContent):
            self._item = _text_item("", status="in_progress")
            return [
                self._event("response.output_item.added", output_index=index, item=self._item),
                self._event(
                    "response.content_part.added", item_id=self._item["id"],
                    output_index=index, content_index=0, part=_text_part(""),
                ),
            ]  # fmt: skip
        if isinstance(block, ToolUseContent):
            self._item = {**_call_item(block, ""), "status": "in_progress"}
            return [self._event("response.output_item.added", output_index=index, item=self._item)]
        self._item = None  # thinking: one reasoning item when it ends
        return []

    def _delta(self, delta: Any) -> list[dict[str, Any]]:
        index, item = len(self.output), self._item
        if isinstance(delta, TextDelta) and item is not None:
            self._text.append(delta.text)
            return [
                self._event(
                    "response.output_text.delta", item_id=item["id"], output_index=index,
                    content_index=0, delta=delta.text, logprobs=[],
                )
            ]  # fmt: skip
        if isinstance(delta, InputJsonDelta) and item is not None:
            self._text.append(delta.partial_json)
            return [
                self._event(
                    "response.function_call_arguments.delta", item_id=item["id"],
                    output_index=index, delta=delta.partial_json,
                )
            ]  # fmt: skip
        if isinstance(delta, ThinkingDelta):
            self._text.append(delta.thinking)
        return []

    def _close(self) -> list[dict[str, Any]]:
        index, item, text = len(self.output), self._item, "".join(self._text)
        events: list[dict[str, Any]] = []
        if isinstance(self._block, TextContent) and item is not None:
            part = _text_part(text)
            item = {**item, "status": "completed", "content": [part]}
            events += [
                self._event(
                    "response.output_text.done", item_id=item["id"], output_index=index,
                    content_index=0, text=text, logprobs=[],
                ),
                self._event(
                    "response.content_part.done", item_id=item["id"], output_index=index,
                    content_index=0, part=part,
                ),
            ]  # fmt: skip
        elif isinstance(self._block, ToolUseContent) and item is not None:
            arguments = text or "{}"
            item = {**item, "status": "completed", "arguments": arguments}
            events.append(
                self._event(
                    "response.function_call_arguments.done", item_id=item["id"],
                    output_index=index, name=item["name"], arguments=arguments,
                )
            )  # fmt: skip
        elif isinstance(self._block, ThinkingContent):
            item = _reasoning_item(text)
            events.append(self._event("response.output_item.added", output_index=index, item=item))
        else:
            return []
        self.output.append(item)
        events.append(self._event("response.output_item.done", output_index=index, item=item))
        self._item = self._block = None
        return events

    def end(self) -> list[dict[str, Any]]:
        self.final = self.shell.response("completed", self.output, self.usage, self.stop_reason)
        kind = (
            "response.completed" if self.final["status"] == "completed" else "response.incomplete"
        )
        return [self._event(kind, response=self.final)]

    def failed(self, message: str, code: str) -> list[dict[str, Any]]:
        failed = self.shell.response("failed", self.output, self.usage)
        failed["error"] = {"code": code, "message": message}
        return [self._event("response.failed", response=failed)]
