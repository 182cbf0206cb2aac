"""Scripted upstream servers on loopback: an OpenAI-compatible one and an Anthropic one;
and the in-memory blob store (`MemoryBlobs`) for the unit tests of the file services.

The last user message says what to do:
  "echo"          answer with the JSON of the request received
  "fail-429-N"    answer 429 (retry-after-ms: 20) N times for this text, then succeed
  "fail-500-N"    answer 500 N times, then succeed
  "bad-400"       always 400 with an error message
  "malformed"     200 whose body is not JSON
  "slow-MS"       wait MS milliseconds, then succeed
  "tool"          call the first tool with {"city": "Oslo"}
  anything else   "stub reply: <text>"
With `rate_limit` set, more than that many requests in a second get 429s;
`latency` delays every answer, as a model would. With `seats`, it runs that many
chat requests at once and queues the rest in arrival order, as vLLM does, and
serves vLLM's load gauges at `/metrics` (without `seats`: a 404 there, as from a
server without metrics); `fcfs` refuses a non-zero `priority` with vLLM's own error; `status` answers every call with it (a
server that keeps failing); `port`: the one to listen on (a server started again).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from batchyard.store.blobs import MemoryBlobs as MemoryBlobs  # the file tests use it
from tests.serverproc import free_port


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message["role"] == "user":
            content = message["content"]
            if isinstance(content, str):
                return content
            return " ".join(p.get("text", "") for p in content if p.get("type") == "text")
    return ""


class Stub:
    def __init__(
        self,
        *,
        api_key: str | None = None,
        rate_limit: float | None = None,
        latency: float = 0.0,
        seats: int | None = None,
        fcfs: bool = False,
        metrics: str | None = None,
        status: int | None = None,
        port: int | None = None,
    ) -> None:
        self.api_key = api_key
        self.rate_limit = rate_limit
        self.latency = latency
        self.seats = seats
        self.fcfs = fcfs
        self.metrics = metrics
        self.status = status
        self.running = 0
        self.waiting = 0
        self.peak_waiting = 0
        self.load_trace: list[tuple[int, int]] = []
        """(running, waiting) at each `/metrics` read."""
        self._seats: asyncio.Semaphore | None = None  # made in the server's loop
        self.received: list[dict[str, Any]] = []
        self.calls: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self._window: list[float] = []
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/messages", self.messages, methods=["POST"]),
                Route("/v1/messages/count_tokens", self.count_tokens, methods=["POST"]),
                Route("/metrics", self.prometheus, methods=["GET"]),
            ]
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Stub:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "stub did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def _respond(self, status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
        self.statuses[status] += 1
        if isinstance(body, bytes):
            return Response(body, status_code=status, media_type="application/json")
        return JSONResponse(body, status_code=status, headers=headers)

    async def _script(
        self, request: Request, shape: str
    ) -> tuple[Response | None, dict[str, Any], str]:
        body = await request.json()
        self.received.append(body)
        if self.status is not None:
            return self._respond(self.status, {"error": {"message": "as told"}}), body, ""
        if self.api_key is not None:
            sent = request.headers.get("x-api-key") or request.headers.get("authorization", "")
            if self.api_key not in sent:
                return self._respond(401, {"error": {"message": "bad key"}}), body, ""
        if self.rate_limit is not None:
            now = time.monotonic()
            self._window = [t for t in self._window if now - t < 1.0]
            if len(self._window) >= self.rate_limit:
                return (
                    self._respond(429, {"error": {"message": "slow down"}}, {"retry-after": "1"}),
                    body,
                    "",
                )
            self._window.append(now)
        if self.latency:
            await asyncio.sleep(self.latency)
        text = _last_user_text(body["messages"])
        self.calls[text] += 1
        n = self.calls[text]
        if text.startswith("fail-429-") and n <= int(text.rsplit("-", 1)[1]):
            return (
                self._respond(
                    429, {"error": {"message": "rate limited"}}, {"retry-after-ms": "20"}
                ),
                body,
                text,
            )
        if text.startswith("fail-500-") and n <= int(text.rsplit("-", 1)[1]):
            return self._respond(500, {"error": {"message": "boom"}}), body, text
        if text == "bad-400":
            message: dict[str, Any] = {
                "error": {"message": "bad thing in request", "type": "invalid_request_error"}
            }
            if shape == "anthropic":
                message = {"type": "error", **message}
            return self._respond(400, message), body, text
        if text == "malformed":
            return self._respond(200, b"{not json"), body, text
        if text.startswith("slow-"):
            await asyncio.sleep(int(text.split("-")[1]) / 1000)
        return None, body, text

    async def prometheus(self, request: Request) -> Response:
        if self.metrics is not None:
            return Response(self.metrics, media_type="text/plain; version=0.0.4")
        if self.seats is None:
            return Response("not found", status_code=404)
        self.load_trace.append((self.running, self.waiting))
        lines = [
            "# HELP vllm:num_requests_running Number of requests in model execution batches.",
            "# TYPE vllm:num_requests_running gauge",
            f'vllm:num_requests_running{{engine="0",model_name="upstream-model"}} {self.running}.0',
            "# TYPE vllm:num_requests_waiting gauge",
            f'vllm:num_requests_waiting{{engine="0",model_name="upstream-model"}} {self.waiting}.0',
            "# TYPE vllm:kv_cache_usage_perc gauge",
            f'vllm:kv_cache_usage_perc{{engine="0",model_name="upstream-model"}} {self.running / 100}',
        ]
        return Response("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")

    async def chat(self, request: Request) -> Response:
        if self.seats is None:
            return await self._chat(request)
        if self._seats is None:
            self._seats = asyncio.Semaphore(self.seats)
        self.waiting += 1
        self.peak_waiting = max(self.peak_waiting, self.waiting)
        try:
            await self._seats.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            return await self._chat(request)
        finally:
            self.running -= 1
            self._seats.release()

    async def _chat(self, request: Request) -> Response:
        early, body, text = await self._script(request, "openai")
        if early is not None:
            return early
        if self.fcfs and body.get("priority", 0) != 0:
            refusal = f"Got priority {body['priority']} but Priority scheduling is not enabled."
            return self._respond(400, {"object": "error", "message": refusal, "type": "BadRequestError", "code": 400})  # fmt: skip
        message: dict[str, Any] = {"role": "assistant", "content": f"stub reply: {text}"}
        finish = "stop"
        if text == "echo":
            message["content"] = json.dumps(body, sort_keys=True)
        elif text == "tool" and body.get("tools"):
            name = body["tools"][0]["function"]["name"]
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_7", "type": "function", "function": {"name": name, "arguments": '{"city": "Oslo"}'}}]}  # fmt: skip
            finish = "tool_calls"
        words = len(message["content"].split()) if message["content"] else 3
        if body.get("stream"):
            return self._stream(body, message, finish, words)
        return self._respond(200, {
            "id": "chatcmpl-stub", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 12, "completion_tokens": words, "total_tokens": 12 + words},
        })  # fmt: skip

    def _stream(
        self, body: dict[str, Any], message: dict[str, Any], finish: str, words: int
    ) -> Response:
        """The same answer as Chat Completions stream chunks (SSE), ending with usage."""

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
            return "data: " + json.dumps({"id": "chatcmpl-stub", "choices": [choice]}) + "\n\n"

        parts = [chunk({"role": "assistant"})]
        if message.get("content"):
            pieces = message["content"].split(" ")
            parts += [
                chunk({"content": p + (" " if i < len(pieces) - 1 else "")})
                for i, p in enumerate(pieces)
            ]
        for call in message.get("tool_calls") or []:
            head = {"index": 0, "id": call["id"], "type": "function",
                    "function": {"name": call["function"]["name"], "arguments": ""}}  # fmt: skip
            parts.append(chunk({"tool_calls": [head]}))
            args = call["function"]["arguments"]
            for piece in (args[: len(args) // 2], args[len(args) // 2 :]):
                parts.append(
                    chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
                )
        parts.append(chunk({}, finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 12, "completion_tokens": words, "total_tokens": 12 + words}
            parts.append(
                "data: "
                + json.dumps({"id": "chatcmpl-stub", "choices": [], "usage": usage})
                + "\n\n"
            )
        parts.append("data: [DONE]\n\n")
        self.statuses[200] += 1
        return Response("".join(parts), media_type="text/event-stream")

    async def messages(self, request: Request) -> Response:
        early, body, text = await self._script(request, "anthropic")
        if early is not None:
            return early
        reply = json.dumps(body, sort_keys=True) if text == "echo" else f"stub reply: {text}"
        return self._respond(200, {
            "id": "msg_stub", "type": "message", "role": "assistant", "model": body["model"],
            "content": [{"type": "text", "text": reply}], "stop_reason": "end_turn",
            "stop_sequence": None, "usage": {"input_tokens": 9, "output_tokens": len(reply.split())},
        })  # fmt: skip

    async def count_tokens(self, request: Request) -> Response:
        body = await request.json()
        self.received.append(body)
        return self._respond(200, {"input_tokens": 4242})
