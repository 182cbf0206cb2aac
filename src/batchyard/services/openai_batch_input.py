"""An OpenAI batch input file, checked line by line the way OpenAI checks it: the
requests to run (each Chat Completions body wrapped as the Messages request the
workers run), or `errors.data[]` naming the lines that fail the batch."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from batchyard.translate.envelope import unservable, wrap_chat_body, wrap_responses_body
from batchyard.wire import json_limits
from batchyard.wire.errors import InvalidParams, format_validation_error
from batchyard.wire.openai import (
    BatchError,
    ChatProbe,
    EmbeddingProbe,
    InputLine,
    ResponsesProbe,
)

MAX_LINES = 50_000
MAX_INPUT_BYTES = 200 * 1024 * 1024
MAX_ERRORS = 1000
ENDPOINTS = ("/v1/chat/completions", "/v1/responses", "/v1/embeddings")
_SAFE_CUSTOM_ID = re.compile(r'^[^"\\\x00-\x1f]{1,512}$')
_line_decoder = msgspec.json.Decoder(InputLine)
_chat_probe = msgspec.json.Decoder(ChatProbe)
_responses_probe = msgspec.json.Decoder(ResponsesProbe)
_embedding_probe = msgspec.json.Decoder(EmbeddingProbe)
_any: msgspec.json.Decoder[Any] = msgspec.json.Decoder()


async def lines_of(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The lines of a byte stream, without their newlines."""
    rest = b""
    async for chunk in chunks:
        parts = (rest + chunk).split(b"\n")
        rest = parts.pop()
        for part in parts:
            yield part
    if rest:
        yield rest


class Validated:
    """What the input file holds: the requests to run, or the reasons it fails."""

    def __init__(self) -> None:
        self.custom_ids: list[str] = []
        self.params: list[bytes] = []
        self.errors: list[BatchError] = []

    def fail(self, code: str, message: str, line: int | None, param: str | None = None) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(BatchError(code, message, param, line))


async def validate(lines: AsyncIterator[bytes], endpoint: str) -> Validated:
    """Every line of the file checked against the batch's `endpoint`."""
    out = Validated()
    seen: set[str] = set()
    n = 0
    async for raw in lines:
        n += 1
        if raw.strip():
            _check_line(out, seen, raw, n, endpoint)
    if n == 0 or (not out.custom_ids and not out.errors):
        out.fail("empty_file", "The input file holds no requests", None)
    if len(out.custom_ids) > MAX_LINES:
        out.fail("too_many_requests", f"A batch holds at most {MAX_LINES:,} requests", None)
    return out


def _check_line(out: Validated, seen: set[str], raw: bytes, n: int, endpoint: str) -> None:
    """Line `n`: its request added to `out`, or its failure."""
    line = _decode_line(out, raw, n)
    if line is None or not _check_envelope(out, seen, line, n, endpoint):
        return
    try:
        if endpoint == "/v1/embeddings":
            model = _embedding_probe.decode(line.body).model
        elif endpoint == "/v1/responses":
            asked = _responses_probe.decode(line.body)
        else:
            probe = _chat_probe.decode(line.body)
        # Nesting too deep fails the line now (its request could not even be read in
        # the worker). A number out of range is found when the request runs, as the
        # rest of the body is: decoding every line here would cost a third more.
        if not json_limits.plainly_shallow(bytes(line.body)):
            json_limits.decode(_any, line.body)
    except InvalidParams as exc:
        out.fail("invalid_request", f"body.{exc}", n, "body")
        return
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        text = format_validation_error(exc)
        field = text.split(":")[0] if ": " in text else ""
        out.fail("invalid_request", f"body.{text}", n, f"body.{field}" if field else "body")
        return
    out.custom_ids.append(line.custom_id)
    if endpoint == "/v1/embeddings":
        # No engine here computes embeddings: each line ends with its own error.
        out.params.append(
            unservable(f"/v1/embeddings: no engine here computes embeddings (model {model!r})")
        )
        return
    if endpoint == "/v1/responses":
        if asked.stream:
            out.fail("invalid_request", "body.stream: not supported in a batch", n, "body.stream")
        elif asked.previous_response_id is not None:
            out.fail(
                "invalid_request", "body.previous_response_id: not supported in a batch", n,
                "body.previous_response_id",
            )  # fmt: skip
        out.params.append(wrap_responses_body(bytes(line.body)))
        return
    if probe.stream:
        out.fail("invalid_request", "body.stream: not supported in a batch", n, "body.stream")
    elif probe.n not in (None, 1):
        out.fail("invalid_request", "body.n: only 1 choice per request", n, "body.n")
    # The rest of the body is checked when the request runs (an invalid one ends
    # in the error file), as the hosted API does with Messages batches.
    out.params.append(wrap_chat_body(bytes(line.body)))


def _decode_line(out: Validated, raw: bytes, n: int) -> InputLine | None:
    try:
        return json_limits.decode(_line_decoder, raw, walk=False)
    except InvalidParams as exc:
        out.fail("invalid_request", str(exc), n)
    except msgspec.ValidationError as exc:
        text = format_validation_error(exc)
        missing = re.search(r"missing required field `(\w+)`", text)
        if missing:
            out.fail("missing_required_parameter", text, n, missing.group(1))
        else:
            out.fail("invalid_request", text, n)
    except msgspec.DecodeError as exc:
        out.fail("invalid_json_line", f"This line is not valid JSON: {exc}", n)
    return None


def _check_envelope(out: Validated, seen: set[str], line: InputLine, n: int, endpoint: str) -> bool:
    """The line's custom_id (safe, unique), method and url; False after a failure."""
    if not _SAFE_CUSTOM_ID.match(line.custom_id):
        out.fail(
            "invalid_custom_id",
            "custom_id: 1 to 512 characters, without quotes, backslashes or control characters",
            n,
            "custom_id",
        )
        return False
    if line.custom_id in seen:
        out.fail("duplicate_custom_id", f"custom_id {line.custom_id!r} is used twice", n)
        return False
    seen.add(line.custom_id)
    if line.method.upper() != "POST":
        out.fail("invalid_method", "method: must be POST", n, "method")
        return False
    if line.url != endpoint:
        out.fail(
            "invalid_url",
            f"url: {line.url!r} does not match the batch's endpoint {endpoint!r}",
            n,
            "url",
        )
        return False
    return True
