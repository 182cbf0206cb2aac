"""Outermost middleware: request-id on every response, authentication, and the error net."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from batchyard import ids
from batchyard.api.errors import error_response
from batchyard.errors import AuthenticationFailed

PUBLIC_PATHS = frozenset({"/healthz", "/readyz"})


def api_key(headers: Headers) -> str | None:
    """The key from `x-api-key` (0.x SDKs, curl) or `Authorization: Bearer` (2.x SDK)."""
    key = headers.get("x-api-key")
    if key:
        return key.strip() or None
    auth = headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = ids.request_id()
        scope.setdefault("state", {})["request_id"] = rid
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), (b"request-id", rid.encode())]
            await send(message)

        try:
            if scope["path"] not in PUBLIC_PATHS:
                key = api_key(Headers(scope=scope))
                if key is None:
                    raise AuthenticationFailed(
                        "Missing API key: send it in the x-api-key header or as"
                        " Authorization: Bearer <key>"
                    )
                # Until workspaces land every non-empty key acts on the default workspace.
                scope["state"]["workspace_id"] = "default"
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if started:
                raise
            await error_response(exc, rid)(scope, receive, send)
