"""Legacy Text Completions as Messages: a `"\\n\\nHuman: …\\n\\nAssistant:"` prompt
becomes a Messages request, and a Message (or its stream) becomes a `completion`.

The prompt's text before its first Human turn is the system prompt; its turns are the
messages (consecutive turns of one speaker joined, as one message); the last turn must
be the Assistant's: empty, it is where the answer goes, else it is a prefill the answer
continues.
"""

from __future__ import annotations

import re
from typing import Literal

from batchyard.ids import completion_id
from batchyard.wire.completions import Completion, CompletionCreateParams, CompletionStopReason
from batchyard.wire.errors import InvalidParams
from batchyard.wire.messages import Message, MessageCreateParams, MessageParam, StopReason
from batchyard.wire.streaming import ContentBlockDelta, MessageDelta, StreamEvent, TextDelta

HUMAN = "\n\nHuman:"
ASSISTANT = "\n\nAssistant:"
_TURN = re.compile(r"\n\n(Human|Assistant):")
_ROLES: dict[str, Literal["user", "assistant"]] = {"Human": "user", "Assistant": "assistant"}

BAD_START = 'prompt must start with "\\n\\nHuman:" turn after an optional system prompt'
BAD_END = 'prompt must end with "\\n\\nAssistant:" turn'


def prompt_turns(prompt: str) -> tuple[str | None, list[MessageParam]]:
    """The system prompt and the messages of a Text Completions prompt (InvalidParams,
    in the hosted API's words, when its turns are not Human … Assistant)."""
    parts = _TURN.split(prompt)
    system, speakers, texts = parts[0].strip(), parts[1::2], parts[2::2]
    if not speakers or speakers[0] != "Human":
        raise InvalidParams(BAD_START)
    if speakers[-1] != "Assistant":
        raise InvalidParams(BAD_END)
    messages: list[MessageParam] = []
    for speaker, text in zip(speakers, texts, strict=True):
        role = _ROLES[speaker]
        text = text.strip()
        if messages and messages[-1].role == role:
            assert isinstance(messages[-1].content, str)
            messages[-1].content = f"{messages[-1].content}\n\n{text}".strip()
        else:
            messages.append(MessageParam(role=role, content=text))
    if not messages[-1].content:
        messages.pop()  # the answer slot
    return system or None, messages


def messages_request(params: CompletionCreateParams) -> MessageCreateParams:
    """The Messages request that answers a Text Completions one."""
    system, messages = prompt_turns(params.prompt)
    return MessageCreateParams(
        model=params.model,
        max_tokens=params.max_tokens_to_sample,
        messages=messages,
        system=system,
        stop_sequences=params.stop_sequences,
        temperature=params.temperature,
        top_p=params.top_p,
        top_k=params.top_k,
        metadata=params.metadata,
    )


def completion_stop(
    reason: StopReason | None, sequence: str | None
) -> tuple[CompletionStopReason, str | None]:
    """A Message's stop as a completion's: out of room is `max_tokens`; any other end
    is `stop_sequence`, naming the sequence only when one was met."""
    if reason in ("max_tokens", "model_context_window_exceeded"):
        return "max_tokens", None
    return "stop_sequence", sequence if reason == "stop_sequence" else None


def completion(message: Message, model: str) -> Completion:
    """A whole Message as a `completion` (its text blocks, joined)."""
    text = "".join(getattr(block, "text", "") for block in message.content)
    reason, stop = completion_stop(message.stop_reason, message.stop_sequence)
    return Completion(completion_id(), text, reason, model, stop)


class CompletionEvents:
    """A Messages stream as `completion` events: one per piece of text, then one with
    no text and the stop reason."""

    def __init__(self, model: str) -> None:
        self.id = completion_id()
        self.model = model

    def feed(self, event: StreamEvent) -> list[Completion]:
        if isinstance(event, ContentBlockDelta) and isinstance(event.delta, TextDelta):
            return [Completion(self.id, event.delta.text, None, self.model)]
        if isinstance(event, MessageDelta):
            reason, stop = completion_stop(event.delta.stop_reason, event.delta.stop_sequence)
            return [Completion(self.id, "", reason, self.model, stop)]
        return []
