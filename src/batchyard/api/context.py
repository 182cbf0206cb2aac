"""Outermost middleware: request-id on every response, admission, and the error net."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from batchyard import ids
from batchyard.api.admission import Admission
from batchyard.api.errors import dialect_of, error_response


class RequestContext:
    def __init__(self, app: ASGIApp, prefix: str = "") -> None:
        self.app = app
        self.prefix = prefix.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = ids.request_id()
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        # `request-id` for the Anthropic SDK, `x-request-id` for the OpenAI SDK.
        extra: list[tuple[bytes, bytes]] = [
            (b"request-id", rid.encode()),
            (b"x-request-id", rid.encode()),
        ]
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        path = self._route_path(scope["path"])
        state["dialect"] = dialect_of(path)
        try:
            admission: Admission = scope["app"].state.admission
            admitted = await admission.admit(scope["method"], path, Headers(scope=scope))
            state["admitted"] = admitted
            extra.extend((k.encode(), v.encode()) for k, v in admitted.headers.items())
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            if started:
                raise
            await error_response(exc, rid, state["dialect"])(scope, receive, send_with_headers)

    def _route_path(self, path: str) -> str:
        """The path without `--path-prefix`, which serves the same routes."""
        if self.prefix and path.startswith(self.prefix + "/"):
            return path[len(self.prefix) :]
        return path
