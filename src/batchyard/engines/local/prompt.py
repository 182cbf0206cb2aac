"""The embedded engine's prompt: a Messages request as the chat its template renders,
and the requests cut at each `cache_control` breakpoint (where its prefix ends)."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from batchyard.engines.local.answer_shape import (
    TOOL_CALL_CLOSE,
    TOOL_CALL_OPEN,
    AnswerShape,
    call_text,
)
from batchyard.errors import EngineError
from batchyard.wire.cache_control import CACHE_TTL_SECONDS, cache_marks
from batchyard.wire.messages import (
    DocumentBlock,
    MessageCreateParams,
    MessageParam,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    text_of,
)
from batchyard.wire.sources import TextSource


def invalid(message: str) -> EngineError:
    return EngineError("invalid_request_error", message, retryable=False)


def ttl_seconds(cache_control: dict[str, Any]) -> float:
    """How long a `cache_control` breakpoint keeps its prefix (checked at decode)."""
    return CACHE_TTL_SECONDS[cache_control.get("ttl", "5m")]


def _has_media(block: ToolResultBlock) -> bool:
    return isinstance(block.content, list) and any(
        not isinstance(b, TextBlock) for b in block.content
    )


def chat_of(params: MessageCreateParams, shape: AnswerShape) -> list[dict[str, str]]:
    """The request as chat messages of text (the answer's shape told in the system
    prompt); an EngineError for a block the model cannot read."""
    system = text_of(params.system)
    if shape.instructions:
        system = f"{system}\n\n{shape.instructions}" if system else shape.instructions
    chat: list[dict[str, str]] = []
    if system:
        chat.append({"role": "system", "content": system})
    for i, message in enumerate(params.messages):
        content = message.content
        if isinstance(content, str):
            chat.append({"role": message.role, "content": content})
            continue
        parts: list[str] = []
        calls: list[dict[str, Any]] = []  # consecutive calls the model chose: one block
        for j, block in enumerate(content):
            if calls and not isinstance(block, ToolUseBlock):
                parts.append(_call_block(calls))
                calls = []
            if isinstance(block, TextBlock):
                parts.append(block.text)
            elif isinstance(block, ToolUseBlock) and shape.trigger:
                calls.append({"name": block.name, "arguments": block.input})
            elif isinstance(block, DocumentBlock) and isinstance(block.source, TextSource):
                parts.append(block.source.data)  # a text document, or a file's text
            elif isinstance(block, ToolUseBlock):
                parts.append(call_text(block.name, block.input))
            elif isinstance(block, ToolResultBlock) and not _has_media(block):
                parts.append(f"Result of the tool call: {text_of(block.content)}")
            elif isinstance(block, ThinkingBlock | RedactedThinkingBlock):
                continue  # an earlier turn's reasoning is not part of the prompt
            else:
                kind = getattr(block, "type", type(block).__name__)
                raise invalid(
                    f"messages.{i}.content.{j}: the local model reads text only, not {kind} blocks"
                )
        if calls:
            parts.append(_call_block(calls))
        chat.append({"role": message.role, "content": "\n".join(parts)})
    return chat


def _call_block(calls: list[dict[str, Any]]) -> str:
    """Earlier calls as the model writes the calls it chooses to make."""
    return f"{TOOL_CALL_OPEN}{json.dumps(calls, ensure_ascii=False)}{TOOL_CALL_CLOSE}"


def cache_cuts(params: MessageCreateParams) -> list[tuple[MessageCreateParams, float]]:
    """For each system or message block marked with `cache_control`: the request cut
    after it, with the mark's ttl (the top-level mark is the prompt's end; tools are told
    in the system prompt's tail, so a mark there is no prefix of its own)."""
    cuts: list[tuple[MessageCreateParams, float]] = []
    first = MessageParam(role="user", content="")
    for mark in cache_marks(params):
        ttl = ttl_seconds(mark.mark)  # type: ignore[arg-type]  # checked at decode
        if mark.part == "system" and isinstance(params.system, list):
            system = params.system[: mark.block + 1]
            cuts.append((msgspec.structs.replace(params, system=system, messages=[first]), ttl))
        elif mark.part == "messages":
            message = params.messages[mark.message]
            assert not isinstance(message.content, str)
            head = msgspec.structs.replace(message, content=message.content[: mark.block + 1])
            messages = [*params.messages[: mark.message], head]
            cuts.append((msgspec.structs.replace(params, messages=messages), ttl))
    return cuts
