"""Encoding of results lines (`{"custom_id": …, "result": …}`), done once by the worker."""

from __future__ import annotations

import msgspec

from batchyard.ids import request_id
from batchyard.wire.batches import ErroredResult
from batchyard.wire.errors import ErrorObject, ErrorResponse
from batchyard.wire.messages import Message, SucceededResult


class ResultLine(msgspec.Struct):
    custom_id: str
    result: SucceededResult | ErroredResult


_encoder = msgspec.json.Encoder()


def succeeded_line(custom_id: str, message: Message) -> bytes:
    return _encoder.encode(ResultLine(custom_id, SucceededResult(message)))


def errored_line(custom_id: str, error_type: str, message: str) -> bytes:
    error = ErrorResponse(ErrorObject(error_type, message), request_id=request_id())
    return _encoder.encode(ResultLine(custom_id, ErroredResult(error)))
