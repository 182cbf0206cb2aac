"""Forward to any Anthropic Messages API (the hosted one, or another batchyard)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec

from batchyard.engines.base import stream_whole_message
from batchyard.engines.config import AdmissionMode
from batchyard.engines.features import ALL_FEATURES
from batchyard.engines.remote.concurrency import EngineAdmission
from batchyard.engines.remote.errors import error_for_status
from batchyard.engines.remote.http import Reply, Upstream
from batchyard.engines.slots import Priority, PrioritySlots
from batchyard.errors import EngineError
from batchyard.wire.messages import Message, MessageCreateParams
from batchyard.wire.params import body_as_sent
from batchyard.wire.streaming import StreamEvent

_message_decoder = msgspec.json.Decoder(Message)


class _Count(msgspec.Struct):
    input_tokens: int


_count_decoder = msgspec.json.Decoder(_Count)


COUNT_FIELDS = frozenset(
    (
        "model",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "thinking",
        "cache_control",
        "output_config",
        "mcp_servers",
        "context_management",
        "speed",
        "compaction",
        "billing_policy",
    )
)
"""What `POST /v1/messages/count_tokens` takes of a Messages request."""


def _body(params: MessageCreateParams, *, count: bool = False) -> dict[str, Any]:
    """The request as the upstream takes it: the body the client sent, unchanged (blocks
    and fields batchyard does not read included), for the model routed to."""
    sent = body_as_sent(params)
    if sent is not None:
        body: dict[str, Any] = msgspec.json.decode(sent)
        body["model"] = params.model
        for name in ("temperature", "top_p", "top_k"):  # the model's defaults filled in
            if name not in body and (value := getattr(params, name)) is not None:
                body[name] = value
    else:
        body = {k: v for k, v in msgspec.to_builtins(params).items() if v is not None}
    body.pop("stream", None)
    if count:
        body = {k: v for k, v in body.items() if k in COUNT_FIELDS}
    return body


class AnthropicEngine:
    def __init__(
        self,
        base_url: str = "https://api.anthropic.com",
        *,
        api_key: str | None = None,
        capacity: int = 32,
        timeout: float = 600.0,
        adaptive: bool = True,
        name: str = "anthropic",
        admission: AdmissionMode | None = None,
    ) -> None:
        """`admission`: aimd (429s only; the default) or fixed (the default without
        `adaptive`); metrics reads a vLLM-style /metrics beside `base_url`."""
        self.name = name
        self.features = ALL_FEATURES
        self.capacity = capacity
        self.slots = PrioritySlots(capacity)
        headers = {"anthropic-version": "2023-06-01"}
        if api_key:
            headers["x-api-key"] = api_key
        self._upstream = Upstream(base_url, name, headers=headers, timeout=timeout)
        mode: AdmissionMode = admission or ("aimd" if adaptive else "fixed")
        # the load probe reads a few times a second: httpx, beside the requests' pool
        self._probe_client = httpx.AsyncClient(headers=headers) if mode == "metrics" else None
        self.admission = EngineAdmission(
            self.slots,
            capacity,
            mode=mode,
            name=name,
            client=self._probe_client,
            metrics_url=f"{base_url.rstrip('/')}/metrics",
            latency_aware=False,  # the hosted API's latency follows the answer's length
        )

    async def _post(self, path: str, body: dict[str, Any]) -> Reply:
        self.admission.start()
        started = time.monotonic()
        reply = await self._upstream.post(path, msgspec.json.encode(body))
        if reply.status_code != 200:
            if reply.status_code == 429:
                await self.admission.on_rate_limited()
            raise error_for_status(reply, self.name)
        self.admission.on_success(time.monotonic() - started)
        return reply

    async def create_message(
        self, params: MessageCreateParams, *, priority: Priority = Priority.BATCH
    ) -> Message:
        reply = await self._post("/v1/messages", _body(params))
        try:
            message = _message_decoder.decode(reply.content)
        except msgspec.DecodeError as exc:
            raise EngineError(
                "api_error", f"{self.name} sent a malformed reply: {exc}", retryable=True
            ) from None
        return message

    def stream_message(
        self, params: MessageCreateParams, *, priority: Priority = Priority.BATCH
    ) -> AsyncIterator[StreamEvent]:
        return stream_whole_message(self, params, priority)

    async def count_tokens(self, params: MessageCreateParams) -> int:
        reply = await self._post("/v1/messages/count_tokens", _body(params, count=True))
        try:
            return _count_decoder.decode(reply.content).input_tokens
        except msgspec.DecodeError as exc:
            raise EngineError(
                "api_error", f"{self.name}: bad count_tokens reply ({exc!r})", retryable=True
            ) from None

    async def aclose(self) -> None:
        await self.admission.aclose()
        await self._upstream.aclose()
        if self._probe_client is not None:
            await self._probe_client.aclose()
