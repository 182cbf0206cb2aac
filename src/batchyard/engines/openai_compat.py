"""Any `/v1/chat/completions` server: vLLM, SGLang, llama.cpp server, Ollama, OpenAI."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import httpx

from batchyard.engines.base import EngineError
from batchyard.engines.remote import AdaptiveLimit, error_for_exception, error_for_status
from batchyard.engines.slots import PrioritySlots
from batchyard.translate.openai_chat import (
    ChatStreamTranslator,
    MalformedReply,
    Untranslatable,
    from_chat_response,
    to_chat_request,
)
from batchyard.wire.messages import Message, MessageCreateParams
from batchyard.wire.streaming import StreamEvent


class OpenAICompatEngine:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        capacity: int = 64,
        timeout: float = 600.0,
        adaptive: bool = True,
        name: str = "openai",
    ) -> None:
        self.name = name
        self.capacity = capacity
        self.slots = PrioritySlots(capacity)
        self.adaptive = AdaptiveLimit(self.slots, capacity) if adaptive else None
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=10.0),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=capacity),
        )

    async def create_message(self, params: MessageCreateParams) -> Message:
        try:
            request = to_chat_request(params, params.model)
        except Untranslatable as exc:
            raise EngineError("invalid_request_error", str(exc), retryable=False) from None
        started = time.monotonic()
        try:
            response = await self._client.post("/chat/completions", json=request)
        except httpx.HTTPError as exc:
            raise error_for_exception(exc, self.name) from None
        if response.status_code != 200:
            error = error_for_status(response, self.name)
            if response.status_code == 429 and self.adaptive:
                await self.adaptive.on_rate_limited()
            raise error
        try:
            message = from_chat_response(response.json(), params, params.model)
        except (json.JSONDecodeError, UnicodeDecodeError, MalformedReply) as exc:
            raise EngineError(
                "api_error", f"{self.name} sent a malformed reply: {exc}", retryable=True
            ) from None
        if self.adaptive:
            self.adaptive.on_success(time.monotonic() - started)
        return message

    async def stream_message(self, params: MessageCreateParams) -> AsyncIterator[StreamEvent]:
        """The upstream's own stream (`stream: true`), translated event by event."""
        try:
            request = to_chat_request(params, params.model)
        except Untranslatable as exc:
            raise EngineError("invalid_request_error", str(exc), retryable=False) from None
        request["stream"] = True
        request["stream_options"] = {"include_usage": True}
        translator = ChatStreamTranslator(params, params.model)
        started = time.monotonic()
        try:
            async with self._client.stream("POST", "/chat/completions", json=request) as response:
                if response.status_code != 200:
                    await response.aread()
                    if response.status_code == 429 and self.adaptive:
                        await self.adaptive.on_rate_limited()
                    raise error_for_status(response, self.name)
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    try:
                        chunk = json.loads(data)
                    except json.JSONDecodeError:
                        raise EngineError(
                            "api_error",
                            f"{self.name} sent a malformed stream chunk",
                            retryable=True,
                        ) from None
                    try:
                        events = translator.feed(chunk)
                    except MalformedReply as exc:
                        raise EngineError(
                            "api_error", f"{self.name}: {exc}", retryable=True
                        ) from None
                    for event in events:
                        yield event
        except httpx.HTTPError as exc:
            raise error_for_exception(exc, self.name) from None
        if self.adaptive:
            self.adaptive.on_success(time.monotonic() - started)
        for event in translator.end():
            yield event

    async def count_tokens(self, params: MessageCreateParams) -> int:
        """An estimate (about 4 characters a token): Chat Completions has no token-count call."""
        request = to_chat_request(params, params.model)
        chars = len(json.dumps(request["messages"])) + len(json.dumps(request.get("tools", [])))
        return max(1, chars // 4)

    async def aclose(self) -> None:
        await self._client.aclose()
