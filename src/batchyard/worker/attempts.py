"""One attempt at a claimed request: its run on the engines, and the Outcome that comes to."""

from __future__ import annotations

import random
import time

from batchyard.clock import Clock
from batchyard.config import WorkerSettings
from batchyard.errors import EngineError
from batchyard.metrics import Metrics
from batchyard.services.inference import Inference, UnknownModel
from batchyard.store.layout import RequestState
from batchyard.store.records import ClaimedRequest, Outcome, TokenUsage
from batchyard.translate.chat_to_messages import ChatRequestError, messages_request
from batchyard.translate.envelope import unservable_reason, unwrap_openai_body
from batchyard.translate.responses_request import messages_params
from batchyard.wire.errors import InvalidParams
from batchyard.wire.params import decode_params
from batchyard.worker.results import errored_line, succeeded_line


class Attempts:
    """Runs claimed requests to their Outcomes, counting engine latency and errors."""

    def __init__(
        self,
        inference: Inference,
        settings: WorkerSettings,
        clock: Clock,
        metrics: Metrics | None,
    ) -> None:
        self.inference = inference
        self.settings = settings
        self.clock = clock
        self.metrics = metrics

    async def run(self, request: ClaimedRequest) -> Outcome:
        """Run `request` on its engine; what that comes to (an engine failure: `failed`)."""
        reason = unservable_reason(request.params)
        if reason is not None:
            return self._errored(request, "invalid_request_error", reason)
        try:
            if request.dialect == "openai":  # an OpenAI batch line: its chat or Responses body
                kind, body = unwrap_openai_body(request.params)
                params = messages_request(body) if kind == "chat" else messages_params(body, [])
            else:
                params = decode_params(request.params)
        except (InvalidParams, ChatRequestError) as exc:
            return self._errored(request, "invalid_request_error", str(exc))
        try:
            params = await self.inference.with_files(params, request.workspace_id)
        except EngineError as exc:  # a file gone or unreadable: this request only
            return self.failed(request, exc)
        started = time.monotonic()
        try:
            message = await self.inference.run_batch_request(params)
        except UnknownModel:
            return self._errored(
                request, "invalid_request_error", f"model: {params.model!r} is not served here"
            )
        except EngineError as exc:
            self._observe_engine(params.model, started, exc)
            return self.failed(request, exc)
        self._observe_engine(params.model, started, None)
        return Outcome(
            request.key,
            request.attempts,
            RequestState.SUCCEEDED,
            succeeded_line(request.custom_id, message),
            usage=TokenUsage.of(params.model, message.usage),
        )

    def _observe_engine(self, model: str, started: float, error: EngineError | None) -> None:
        if self.metrics is None:
            return
        engine = self.inference.router.resolve(model).engine.name
        if error is None:
            self.metrics.engine_latency.labels(engine).observe(time.monotonic() - started)
        else:
            self.metrics.engine_errors.labels(engine, error.error_type).inc()

    def _errored(self, request: ClaimedRequest, error_type: str, message: str) -> Outcome:
        return Outcome(
            request.key,
            request.attempts,
            RequestState.ERRORED,
            errored_line(request.custom_id, error_type, message),
        )

    def failed(self, request: ClaimedRequest, exc: EngineError) -> Outcome:
        """A retryable failure, with attempts left: queued again after a backoff; else errored."""
        s = self.settings
        if exc.retryable and request.attempts < s.max_attempts:
            backoff = min(s.retry_max_seconds, s.retry_base_seconds * 2 ** (request.attempts - 1))
            delay = exc.retry_after if exc.retry_after is not None else backoff
            delay *= 1 + random.random() * 0.25
            return Outcome(
                request.key,
                request.attempts,
                RequestState.QUEUED,
                available_at=self.clock.now() + delay,
            )
        return self._errored(request, exc.error_type, exc.message)
