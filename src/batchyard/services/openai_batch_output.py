"""An ended batch's results (Messages results lines) as the lines of its OpenAI output
file (succeeded requests, each a Chat Completion) and error file (the rest)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec

from batchyard import ids
from batchyard.errors import http_status_of
from batchyard.translate.chat_answers import chat_completion
from batchyard.wire.messages import Message

_encoder = msgspec.json.Encoder()


async def output_lines(results: AsyncIterator[bytes]) -> tuple[list[bytes], list[bytes]]:
    """(output file lines, error file lines) of a batch's results JSONL chunks."""
    succeeded: list[bytes] = []
    failed: list[bytes] = []
    async for chunk in results:
        for raw in chunk.splitlines():
            ok, line = output_line(msgspec.json.decode(raw))
            (succeeded if ok else failed).append(line)
    return succeeded, failed


def output_line(result: dict[str, Any]) -> tuple[bool, bytes]:
    """A results line (Messages) as an OpenAI batch output line; (succeeded?, line)."""
    custom_id = result["custom_id"]
    outcome = result["result"]
    kind = outcome.get("type")
    response: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    if kind == "succeeded":
        message = msgspec.convert(outcome["message"], Message)
        body = chat_completion(message, message.model)
        response = {"status_code": 200, "request_id": ids.request_id(), "body": body}
    elif kind == "errored":
        detail = outcome["error"]["error"]
        response = {
            "status_code": http_status_of(detail["type"]),
            "request_id": outcome["error"].get("request_id") or ids.request_id(),
            "body": {
                "error": {
                    "message": detail["message"],
                    "type": detail["type"],
                    "param": None,
                    "code": None,
                }
            },
        }
    elif kind == "canceled":
        error = {"code": "batch_cancelled", "message": "The batch was cancelled before this ran"}
    else:
        error = {"code": "batch_expired", "message": "The batch expired before this ran"}
    line = {
        "id": ids.batch_request_id(),
        "custom_id": custom_id,
        "response": response,
        "error": error,
    }
    return kind == "succeeded", _encoder.encode(line) + b"\n"
