"""Legacy Text Completions structs (`POST /v1/complete`, the 0.x SDKs'
`client.completions.create`): the request and the `completion` answer, which is also
each event of its stream."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from batchyard.wire.params import decode_body

CompletionStopReason = Literal["stop_sequence", "max_tokens"]


class CompletionCreateParams(msgspec.Struct, forbid_unknown_fields=True):
    """`POST /v1/complete` body: every key the 0.x SDKs send; any other is refused."""

    model: Annotated[str, msgspec.Meta(min_length=1)]
    prompt: str
    max_tokens_to_sample: Annotated[int, msgspec.Meta(ge=1)]
    stop_sequences: list[str] | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None
    top_p: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None
    top_k: Annotated[int, msgspec.Meta(ge=0)] | None = None
    metadata: dict[str, Any] | None = None
    stream: bool | None = None


class Completion(msgspec.Struct):
    """The answer, and each `completion` event of a stream (a piece of the text, the
    stop reason on the last one only)."""

    id: str
    completion: str
    stop_reason: CompletionStopReason | None
    model: str
    stop: str | None = None
    """The stop sequence met (None at the end of a turn, as the hosted API sent)."""
    type: Literal["completion"] = "completion"


_decoder = msgspec.json.Decoder(CompletionCreateParams)
_encoder = msgspec.json.Encoder()


def decode_completion_params(raw: bytes | bytearray | memoryview) -> CompletionCreateParams:
    """The request, field types checked (the prompt's turns: `translate/completions.py`);
    a problem is an InvalidParams."""
    return decode_body(_decoder, raw)


def completion_sse(piece: Completion) -> bytes:
    """One `completion` event of a stream."""
    return b"event: completion\ndata: " + _encoder.encode(piece) + b"\n\n"
