"""Server-sent events of a streamed Message, in the order the SDK's stream accumulator expects.

message_start → (content_block_start → content_block_delta* → content_block_stop)* →
message_delta → message_stop.
"""

from __future__ import annotations

from typing import Any

import msgspec

from batchyard.wire.errors import ErrorResponse
from batchyard.wire.messages import ContentBlock, Message, StopReason, Usage


class TextDelta(msgspec.Struct, tag="text_delta", tag_field="type"):
    text: str


class InputJsonDelta(msgspec.Struct, tag="input_json_delta", tag_field="type"):
    partial_json: str


class ThinkingDelta(msgspec.Struct, tag="thinking_delta", tag_field="type"):
    """A piece of a `thinking` block's text (the SDKs concatenate them)."""

    thinking: str


class SignatureDelta(msgspec.Struct, tag="signature_delta", tag_field="type"):
    """A `thinking` block's signature, sent once just before its `content_block_stop`
    (the SDKs replace the block's signature with it; an engine that signs nothing sends
    "")."""

    signature: str


class MessageStart(msgspec.Struct, tag="message_start", tag_field="type"):
    message: Message


class ContentBlockStart(msgspec.Struct, tag="content_block_start", tag_field="type"):
    index: int
    content_block: ContentBlock


class ContentBlockDelta(msgspec.Struct, tag="content_block_delta", tag_field="type"):
    index: int
    delta: TextDelta | InputJsonDelta | ThinkingDelta | SignatureDelta


class ContentBlockStop(msgspec.Struct, tag="content_block_stop", tag_field="type"):
    index: int


class MessageDeltaBody(msgspec.Struct):
    stop_reason: StopReason | None
    stop_sequence: str | None


class DeltaUsage(msgspec.Struct, omit_defaults=True):
    output_tokens: int
    input_tokens: int | None = None
    """Sent when the engine learns it only at the end (OpenAI-compatible streams)."""
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    """The prompt's cached parts, when known only after `message_start` (the SDKs
    merge these into the final message's usage)."""


def merge_delta_usage(usage: Usage, delta: DeltaUsage) -> None:
    """What a `message_delta` says of usage, merged into the message's (as the SDKs do)."""
    usage.output_tokens = delta.output_tokens
    if delta.input_tokens is not None:
        usage.input_tokens = delta.input_tokens
    if delta.cache_creation_input_tokens is not None:
        usage.cache_creation_input_tokens = delta.cache_creation_input_tokens
    if delta.cache_read_input_tokens is not None:
        usage.cache_read_input_tokens = delta.cache_read_input_tokens


class MessageDelta(msgspec.Struct, tag="message_delta", tag_field="type"):
    delta: MessageDeltaBody
    usage: DeltaUsage


class MessageStop(msgspec.Struct, tag="message_stop", tag_field="type"):
    pass


class Ping(msgspec.Struct, tag="ping", tag_field="type"):
    pass


StreamEvent = (
    MessageStart
    | ContentBlockStart
    | ContentBlockDelta
    | ContentBlockStop
    | MessageDelta
    | MessageStop
    | Ping
)

_encoder = msgspec.json.Encoder()
_NAMES: dict[type[Any], str] = {
    MessageStart: "message_start",
    ContentBlockStart: "content_block_start",
    ContentBlockDelta: "content_block_delta",
    ContentBlockStop: "content_block_stop",
    MessageDelta: "message_delta",
    MessageStop: "message_stop",
    Ping: "ping",
}


def sse(event: StreamEvent) -> bytes:
    return (
        b"event: " + _NAMES[type(event)].encode() + b"\ndata: " + _encoder.encode(event) + b"\n\n"
    )


def sse_error(error: ErrorResponse) -> bytes:
    return b"event: error\ndata: " + _encoder.encode(error) + b"\n\n"


def message_start(message: Message) -> MessageStart:
    """The opening event: the message with no content yet and no stop reason."""
    head = msgspec.structs.replace(
        message,
        content=[],
        stop_reason=None,
        stop_sequence=None,
        usage=msgspec.structs.replace(message.usage, output_tokens=0),
    )
    return MessageStart(head)


def message_end(
    stop_reason: StopReason | None,
    stop_sequence: str | None,
    output_tokens: int,
    input_tokens: int | None = None,
    cache_creation_input_tokens: int | None = None,
    cache_read_input_tokens: int | None = None,
) -> list[StreamEvent]:
    usage = DeltaUsage(
        output_tokens, input_tokens, cache_creation_input_tokens, cache_read_input_tokens
    )
    return [
        MessageDelta(MessageDeltaBody(stop_reason, stop_sequence), usage),
        MessageStop(),
    ]


def events_from_message(message: Message, chunk_words: int = 4) -> list[StreamEvent]:
    """The stream of an engine that answers whole messages: same content, sent in pieces."""
    events: list[StreamEvent] = [message_start(message)]
    for index, block in enumerate(message.content):
        events += block_events(index, block, chunk_words)
    events.extend(
        message_end(message.stop_reason, message.stop_sequence, message.usage.output_tokens)
    )
    return events


def block_events(index: int, block: Any, chunk_words: int = 4) -> list[StreamEvent]:
    """One whole content block as its start, deltas and stop events."""
    from batchyard.wire.messages import (
        RedactedThinkingContent,
        TextContent,
        ThinkingContent,
        ToolUseContent,
    )

    events: list[StreamEvent] = []
    if isinstance(block, TextContent):
        events.append(ContentBlockStart(index, TextContent(text="")))
        events += [
            ContentBlockDelta(index, TextDelta(piece))
            for piece in _word_pieces(block.text, chunk_words)
        ]
    elif isinstance(block, ToolUseContent):
        events.append(ContentBlockStart(index, ToolUseContent(block.id, block.name, {})))
        events.append(
            ContentBlockDelta(index, InputJsonDelta(_encoder.encode(block.input).decode()))
        )
    elif isinstance(block, ThinkingContent):
        events.append(ContentBlockStart(index, ThinkingContent(thinking="", signature="")))
        events += [
            ContentBlockDelta(index, ThinkingDelta(piece))
            for piece in _word_pieces(block.thinking, chunk_words)
        ]
        events.append(ContentBlockDelta(index, SignatureDelta(block.signature)))
    elif isinstance(block, RedactedThinkingContent):
        events.append(ContentBlockStart(index, block))  # whole, as the hosted API sends it
    events.append(ContentBlockStop(index))
    return events


def _word_pieces(text: str, chunk_words: int) -> list[str]:
    """`text` in pieces of `chunk_words` words, each but the last keeping its trailing
    space, so that the pieces join back to `text` exactly."""
    words = text.split(" ")
    pieces = []
    for i in range(0, len(words), chunk_words):
        piece = " ".join(words[i : i + chunk_words])
        if i + chunk_words < len(words):
            piece += " "
        if piece:
            pieces.append(piece)
    return pieces
