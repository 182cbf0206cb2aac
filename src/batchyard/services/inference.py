"""One path for every Messages request, whoever asks: `/v1/messages` plain and streamed,
`/v1/complete` and chat completions (translated to Messages first), count_tokens, and a
batch attempt in the worker.

Each request's file sources are read from its workspace, it runs on the engine its
model routes to inside that engine's priority slots (interactive calls go before batch
work in one pool), and an interactive call's usage is counted for its workspace and key
(a batch request's usage is recorded with its outcome, by the worker).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, Iterator

import msgspec

from batchyard.engines import dispatch
from batchyard.engines.router import EngineRouter, UnknownModel
from batchyard.engines.slots import Priority
from batchyard.errors import NotFound
from batchyard.metrics import Metrics
from batchyard.services.file_content import resolve_files
from batchyard.services.files import FileService
from batchyard.services.usage import UsageService
from batchyard.store.records import TokenUsage
from batchyard.wire.messages import Message, MessageCreateParams, Usage
from batchyard.wire.models import ModelInfo
from batchyard.wire.streaming import MessageDelta, MessageStart, StreamEvent, merge_delta_usage

log = logging.getLogger("batchyard.inference")

__all__ = ["Caller", "Inference", "UnknownModel"]


class Caller(msgspec.Struct, frozen=True):
    """Who an interactive call is counted for."""

    workspace_id: str
    api_key_id: str


class Inference:
    def __init__(
        self,
        router: EngineRouter,
        files: FileService | None,
        usage: UsageService | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.router = router
        self.files = files
        """Where file sources are read (None: a request naming one errors)."""
        self.usage = usage
        self.metrics = metrics

    # --- the API's calls (interactive) -------------------------------------------

    async def create(self, params: MessageCreateParams, caller: Caller) -> Message:
        """One interactive call answered whole, its usage counted. Raises NotFound for a
        model served by no engine, EngineError for the engine's failures."""
        params = await resolve_files(params, self.files, caller.workspace_id)
        with _served(params.model):
            message = await dispatch.create_message(self.router, params, Priority.INTERACTIVE)
        message.usage.service_tier = "standard"
        await self._count(caller, TokenUsage.of(params.model, message.usage))
        return message

    async def stream(
        self, params: MessageCreateParams, caller: Caller
    ) -> AsyncGenerator[StreamEvent]:
        """One interactive call's events; its usage is counted when they end (or the
        client goes). The first event is awaited here, so that an unknown model
        (NotFound) or an engine that fails at once is an error before anything is sent;
        a later EngineError comes out of the iterator."""
        params = await resolve_files(params, self.files, caller.workspace_id)
        events = dispatch.stream_message(self.router, params, Priority.INTERACTIVE)
        with _served(params.model):
            first = await anext(events)
        usage = Usage(input_tokens=0, output_tokens=0)
        if isinstance(first, MessageStart):
            first.message.usage.service_tier = "standard"
            usage = msgspec.structs.replace(first.message.usage)

        async def counted() -> AsyncGenerator[StreamEvent]:
            try:
                yield first
                async for event in events:
                    if isinstance(event, MessageDelta):
                        merge_delta_usage(usage, event.usage)
                    yield event
            finally:
                await events.aclose()
                await self._count(caller, TokenUsage.of(params.model, usage))

        return counted()

    async def count_tokens(self, params: MessageCreateParams, workspace_id: str) -> int:
        params = await resolve_files(params, self.files, workspace_id)
        with _served(params.model):
            return await dispatch.count_tokens(self.router, params)

    def models(self) -> list[ModelInfo]:
        return self.router.models()

    def model(self, model_id: str) -> ModelInfo:
        with _served(model_id):
            return self.router.model(model_id)

    # --- the worker's calls (batch) ----------------------------------------------

    async def with_files(
        self, params: MessageCreateParams, workspace_id: str
    ) -> MessageCreateParams:
        """`params` with its file sources read from `workspace_id` (raises EngineError: a
        file gone or unreadable fails this request only)."""
        return await resolve_files(params, self.files, workspace_id)

    async def run_batch_request(self, params: MessageCreateParams) -> Message:
        """A batch request's attempt (its files read: `with_files`), at batch priority.
        Raises UnknownModel (the request ends errored), EngineError (retried or errored)."""
        message = await dispatch.create_message(self.router, params, Priority.BATCH)
        message.usage.service_tier = "batch"
        return message

    async def _count(self, caller: Caller, usage: TokenUsage) -> None:
        """Add one interactive call to its workspace's usage; a store hiccup costs the
        count, never the answer."""
        if self.metrics is not None:
            self.metrics.count_tokens("standard", usage)
        if self.usage is None:
            return
        try:
            await self.usage.count_call(caller.workspace_id, caller.api_key_id, usage)
        except Exception:
            log.warning("could not count the usage of a call", exc_info=True)


@contextlib.contextmanager
def _served(model: str) -> Iterator[None]:
    """An unknown model is a 404, as the hosted API answers."""
    try:
        yield
    except UnknownModel:
        raise NotFound(f"model: {model}") from None
