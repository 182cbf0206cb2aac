"""What the interactive routes (`/v1/messages`, `/v1/complete`, `/v1/chat/completions`)
share: the body limit, who a call is counted for, one call answered whole or streamed
(run by `services/inference.py`), and the stream's HTTP framing."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator

from starlette.requests import Request
from starlette.responses import StreamingResponse

from batchyard.api import state
from batchyard.errors import EngineError
from batchyard.services.inference import Caller
from batchyard.wire.errors import ErrorObject, ErrorResponse
from batchyard.wire.messages import Message, MessageCreateParams
from batchyard.wire.streaming import StreamEvent

log = logging.getLogger("batchyard.api")

MAX_MESSAGE_BYTES = 32 * 1024 * 1024


def caller(request: Request) -> Caller:
    """Who this call's usage is counted for."""
    return Caller(state.workspace(request), state.principal(request).key_id)


async def create_message(request: Request, params: MessageCreateParams) -> Message:
    """One interactive call answered whole (`services/inference.py`)."""
    return await state.inference(request).create(params, caller(request))


async def stream_message(
    request: Request, params: MessageCreateParams
) -> AsyncGenerator[StreamEvent]:
    """One interactive call's Messages events (`services/inference.py`): an unknown model
    or an engine failing at once is an HTTP error; a later EngineError comes out of the
    iterator (see `stream_error`)."""
    return await state.inference(request).stream(params, caller(request))


def stream_error(request: Request, exc: EngineError) -> ErrorResponse:
    """What an `error` event of an Anthropic-dialect stream carries."""
    rid: str = request.state.request_id
    return ErrorResponse(ErrorObject(exc.error_type, exc.message), rid)


def event_stream(body: AsyncIterator[bytes]) -> StreamingResponse:
    """A server-sent-events response, unbuffered by proxies."""
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )
