"""Any `/v1/chat/completions` server: vLLM, SGLang, llama.cpp server, Ollama, OpenAI.

Concurrency follows the server's own load (`engines/remote/concurrency.py`): its Prometheus
metrics where it has them (vLLM, SGLang, llama-server), else 429s and latency. With
`send_priority` each request carries vLLM's `priority` (lower is served first:
interactive calls 0, batch work `batch_priority`), for a server started with
`--scheduling-policy priority`; a server in first-come-first-served mode refuses a
non-zero one, so it is sent only when configured (and dropped, like the keys below,
if the server refuses it all the same).

The reasoning controls a request may carry are not every server's: vLLM refuses
`thinking_token_budget` unless it was started with a reasoning parser, OpenAI refuses
`chat_template_kwargs`, and `reasoning_effort` for a model that does not reason. An
upstream whose error names one of them is asked again without it, and not sent it
again for that model, so a request does not fail for a control the server lacks.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import msgspec

from batchyard.engines.config import BATCH_PRIORITY_ERROR, AdmissionMode
from batchyard.engines.remote.concurrency import EngineAdmission
from batchyard.engines.remote.errors import Answer, error_for_status, upstream_message
from batchyard.engines.remote.http import Reply, Stream, Upstream
from batchyard.engines.remote.upstream_load import UpstreamLoad, metrics_url_for
from batchyard.engines.slots import Priority, PrioritySlots
from batchyard.errors import EngineError
from batchyard.translate.messages_to_chat import (
    ChatStreamTranslator,
    MalformedReply,
    Untranslatable,
    from_chat_response,
    to_chat_request,
)
from batchyard.wire.messages import Message, MessageCreateParams
from batchyard.wire.streaming import StreamEvent

log = logging.getLogger("batchyard.openai")

OPTIONAL_KEYS = ("thinking_token_budget", "chat_template_kwargs", "reasoning_effort", "priority")
"""Request keys an upstream may refuse, dropped (and remembered) when it does."""


class OpenAICompatEngine:
    features: frozenset[str] = frozenset()  # none of engines/features.py

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        capacity: int = 64,
        timeout: float = 600.0,
        adaptive: bool = True,
        name: str = "openai",
        admission: AdmissionMode | None = None,
        metrics_url: str | Sequence[str] | None = None,
        metrics_interval: float = 0.5,
        target_queue: int | None = None,
        send_priority: bool = False,
        batch_priority: int = 10,
        slots: PrioritySlots | None = None,
    ) -> None:
        """`capacity`: the most requests sent at once (the admission's upper bound);
        `admission`: metrics | aimd | fixed (default: aimd, or fixed without `adaptive`);
        `metrics_url`: default the base URL less `/v1`, plus `/metrics`; several (a
        fleet's replicas, or `dns+http://name:port/metrics` for every address of a
        name) are read and summed; `slots`: where its admission sets the level (a
        replica set's own kind; default new slots of `capacity`)."""
        if batch_priority <= 0:
            raise ValueError(BATCH_PRIORITY_ERROR.format(batch_priority))
        self.name = name
        self.capacity = capacity
        self.slots = slots if slots is not None else PrioritySlots(capacity)
        self.send_priority = send_priority
        self.batch_priority = batch_priority
        self._refused: dict[str, set[str]] = {}  # upstream model → OPTIONAL_KEYS it refused
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._upstream = Upstream(base_url, name, headers=headers, timeout=timeout)
        mode: AdmissionMode = admission or ("aimd" if adaptive else "fixed")
        probed = mode == "metrics" or bool(metrics_url)
        # the load probe reads a few times a second: httpx, beside the requests' pool
        self._probe_client = httpx.AsyncClient(headers=headers) if probed else None
        self.admission = EngineAdmission(
            self.slots,
            capacity,
            mode=mode,
            name=name,
            client=self._probe_client,
            metrics_url=metrics_url or metrics_url_for(base_url),
            interval=metrics_interval,
            target_queue=target_queue,
        )

    @property
    def upstream_load(self) -> UpstreamLoad | None:
        """The server's latest load reading (running, waiting, KV usage, prefix cache
        counters), where its metrics are read."""
        return self.admission.load

    @property
    def upstream_replicas(self) -> dict[str, UpstreamLoad | None]:
        """Each metrics endpoint's latest reading (a fleet: one a replica; None: it did
        not answer), by its URL."""
        probe = self.admission.probe
        return dict(probe.readings) if probe is not None else {}

    def _request(self, params: MessageCreateParams, priority: Priority) -> dict[str, Any]:
        """The Chat Completions request, less the keys this upstream refused for the model."""
        self.admission.start()
        try:
            request = to_chat_request(params, params.model)
        except Untranslatable as exc:
            raise EngineError("invalid_request_error", str(exc), retryable=False) from None
        if self.send_priority:
            request["priority"] = 0 if priority == Priority.INTERACTIVE else self.batch_priority
        for key in self._refused.get(params.model, ()):
            request.pop(key, None)
        return request

    def _refused_key(self, request: dict[str, Any], response: Answer) -> str | None:
        """The optional key the upstream's error names (now remembered), if any."""
        if response.status_code not in (400, 422):  # only a refusal of the request itself
            return None
        message = upstream_message(response)
        for key in OPTIONAL_KEYS:
            if key in request and key in message:
                self._refused.setdefault(request["model"], set()).add(key)
                log.warning(
                    "%s refuses %s for %s (%s): it is not sent to that model any more",
                    self.name,
                    key,
                    request["model"],
                    message[:200],
                )
                return key
        return None

    async def _on_refusal(self, request: dict[str, Any], response: Answer) -> None:
        """A refusal: drops the optional key it names from `request` (to ask again),
        else raises its EngineError."""
        key = self._refused_key(request, response)
        if key is None:
            if response.status_code == 429:
                await self.admission.on_rate_limited()
            raise error_for_status(response, self.name)
        del request[key]

    async def _post(self, request: dict[str, Any]) -> Reply:
        """POST the request until a 200, asking again without each optional key the
        upstream refuses; else an EngineError."""
        while True:
            reply = await self._upstream.post("/chat/completions", msgspec.json.encode(request))
            if reply.status_code == 200:
                return reply
            await self._on_refusal(request, reply)

    async def create_message(
        self, params: MessageCreateParams, *, priority: Priority = Priority.BATCH
    ) -> Message:
        request = self._request(params, priority)
        started = time.monotonic()
        reply = await self._post(request)
        try:
            message = from_chat_response(msgspec.json.decode(reply.content), params, params.model)
        except (msgspec.DecodeError, MalformedReply) as exc:
            raise EngineError(
                "api_error", f"{self.name} sent a malformed reply: {exc}", retryable=True
            ) from None
        self.admission.on_success(time.monotonic() - started, message.usage.output_tokens)
        return message

    async def stream_message(
        self, params: MessageCreateParams, *, priority: Priority = Priority.BATCH
    ) -> AsyncIterator[StreamEvent]:
        """The upstream's own stream (`stream: true`), translated event by event."""
        request = self._request(params, priority)
        request["stream"] = True
        request["stream_options"] = {"include_usage": True}
        translator = ChatStreamTranslator(params, params.model)
        started = time.monotonic()
        while True:
            async with self._upstream.stream(
                "/chat/completions", msgspec.json.encode(request)
            ) as stream:
                if stream.reply is None:
                    async for event in self._events(translator, stream):
                        yield event
                    break
            await self._on_refusal(request, stream.reply)
        tokens = translator.usage.get("completion_tokens")
        self.admission.on_success(
            time.monotonic() - started, tokens if isinstance(tokens, int) else None
        )
        for event in translator.end():
            yield event

    async def _events(
        self, translator: ChatStreamTranslator, stream: Stream
    ) -> AsyncIterator[StreamEvent]:
        """The stream's `data:` lines, translated, up to `[DONE]`."""
        async for line in stream.lines():
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                return
            for event in self._translate(translator, data):
                yield event

    def _translate(self, translator: ChatStreamTranslator, data: bytes) -> list[StreamEvent]:
        """One `data:` line of the upstream's stream as Messages stream events."""
        try:
            return translator.feed(msgspec.json.decode(data))
        except msgspec.DecodeError:
            raise EngineError(
                "api_error", f"{self.name} sent a malformed stream chunk", retryable=True
            ) from None
        except MalformedReply as exc:
            raise EngineError("api_error", f"{self.name}: {exc}", retryable=True) from None

    async def count_tokens(self, params: MessageCreateParams) -> int:
        """An estimate (about 4 characters a token): Chat Completions has no token-count call."""
        request = to_chat_request(params, params.model)
        chars = len(json.dumps(request["messages"])) + len(json.dumps(request.get("tools", [])))
        return max(1, chars // 4)

    async def aclose(self) -> None:
        await self.admission.aclose()
        await self._upstream.aclose()
        if self._probe_client is not None:
            await self._probe_client.aclose()
