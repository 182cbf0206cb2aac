"""An ended batch's results (Messages results lines) as the lines of its OpenAI output
file (succeeded requests, each a Chat Completion, or a Response for a `/v1/responses`
batch) and error file (the rest)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec

from batchyard import ids
from batchyard.errors import http_status_of
from batchyard.translate.chat_answers import chat_completion
from batchyard.translate.responses_answers import ResponseShell, response_object
from batchyard.wire.messages import Message

_encoder = msgspec.json.Encoder()


async def output_chunks(
    results: AsyncIterator[bytes], succeeded: bool, endpoint: str = "/v1/chat/completions"
) -> AsyncIterator[bytes]:
    """The output file's lines (`succeeded`) or the error file's (not) of a batch's results
    JSONL chunks, a results chunk in, a chunk of lines out (none empty)."""
    async for chunk in results:
        picked = []
        for raw in chunk.splitlines():
            result = msgspec.json.decode(raw)
            if (result["result"].get("type") == "succeeded") == succeeded:
                picked.append(output_line(result, endpoint)[1])
        if picked:
            yield b"".join(picked)


def output_line(
    result: dict[str, Any], endpoint: str = "/v1/chat/completions"
) -> tuple[bool, bytes]:
    """A results line (Messages) as an OpenAI batch output line; (succeeded?, line)."""
    custom_id = result["custom_id"]
    outcome = result["result"]
    kind = outcome.get("type")
    response: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    if kind == "succeeded":
        message = msgspec.convert(outcome["message"], Message)
        if endpoint == "/v1/responses":
            # the request's own fields (instructions, tools) are not in the results
            body = response_object(ResponseShell({"store": False}, message.model), message)
        else:
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
