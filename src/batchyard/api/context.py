"""Outermost middleware: request-id on every response, admission, and the error net."""

from __future__ import annotations

import time

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from batchyard import ids, logs
from batchyard.api.admission import Admission
from batchyard.api.endpoints import Table
from batchyard.api.errors import error_response
from batchyard.metrics import Metrics


class RequestContext:
    def __init__(self, app: ASGIApp, prefix: str = "") -> None:
        self.app = app
        self.prefix = prefix.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = ids.request_id()
        logs.request_id.set(rid)  # this task's log lines carry it
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        # `request-id` for the Anthropic SDK, `x-request-id` for the OpenAI SDK.
        extra: list[tuple[bytes, bytes]] = [
            (b"request-id", rid.encode()),
            (b"x-request-id", rid.encode()),
        ]
        started = False
        begun = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), *extra]
                self._observe(scope, message["status"], time.perf_counter() - begun)
            await send(message)

        path = self._route_path(scope["path"])
        headers = Headers(scope=scope)
        table: Table = scope["app"].state.table
        endpoint = table.find(scope["method"], path)
        state["dialect"] = table.dialect(endpoint, path, headers)
        try:
            admission: Admission = scope["app"].state.admission
            admitted = await admission.admit(endpoint, headers)
            state["admitted"] = admitted
            extra.extend((k.encode(), v.encode()) for k, v in admitted.headers.items())
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            if started:
                raise
            await error_response(exc, rid, state["dialect"])(scope, receive, send_with_headers)

    @staticmethod
    def _observe(scope: Scope, status: int, seconds: float) -> None:
        metrics: Metrics | None = getattr(scope["app"].state, "metrics", None)
        if metrics is None:
            return
        endpoint = scope.get("endpoint")
        route = getattr(endpoint, "__name__", "unmatched")  # a route's name, never a raw path
        metrics.http_requests.labels(scope["method"], route, str(status)).inc()
        metrics.http_latency.labels(route).observe(seconds)

    def _route_path(self, path: str) -> str:
        """The path without `--path-prefix`, which serves the same routes."""
        if self.prefix and path.startswith(self.prefix + "/"):
            return path[len(self.prefix) :]
        return path
