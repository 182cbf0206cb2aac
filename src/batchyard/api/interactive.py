"""What the interactive routes (`/v1/messages`, `/v1/chat/completions`) share: the body
limit, an unknown model as a 404, and counting each call's usage."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from starlette.requests import Request

from batchyard.api import state
from batchyard.engines.router import UnknownModel
from batchyard.errors import NotFound
from batchyard.metrics import Metrics
from batchyard.store.records import TokenUsage

log = logging.getLogger("batchyard.api")

MAX_MESSAGE_BYTES = 32 * 1024 * 1024


@contextmanager
def engine_errors(model: str) -> Iterator[None]:
    """An unknown model is a 404 (as the hosted API answers); engine errors keep their
    type (an EngineError is an API error of its own)."""
    try:
        yield
    except UnknownModel:
        raise NotFound(f"model: {model}") from None


async def count_usage(request: Request, usage: TokenUsage) -> None:
    """Add one interactive call to the workspace's usage; a store hiccup costs the
    count, never the answer."""
    metrics: Metrics | None = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.count_tokens("standard", usage)
    try:
        await state.usage(request).count_call(
            state.workspace(request), state.principal(request).key_id, usage
        )
    except Exception:
        log.warning("could not count usage of %s", request.state.request_id, exc_info=True)
