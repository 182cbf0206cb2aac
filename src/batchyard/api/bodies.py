"""Receiving request bodies without letting one client hold the process's memory.

Every body a route reads (JSON or a multipart upload) streams through `Bodies.stream`:

- memory grows with the bytes received, never with the `Content-Length` declared;
- the whole body must arrive within `timeout` seconds (a 408 otherwise), so a
  client that sends headers and then trickles bytes frees its share soon;
- at most `max_reads` bodies are received at once, holding at most `max_bytes`
  between them; past either the request is answered `overloaded_error` (529, which
  the SDKs retry with backoff) instead of waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator

from starlette.requests import ClientDisconnect, Request

from batchyard.config import BodyLimits
from batchyard.errors import ClientGone, Overloaded, RequestTimeout, RequestTooLarge


class Bodies:
    """One process's bodies in flight (`app.state.bodies`)."""

    def __init__(self, limits: BodyLimits | None = None) -> None:
        self.limits = limits or BodyLimits()
        self.reading = 0
        self.held = 0

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        if self.reading >= self.limits.max_reads:
            raise Overloaded(
                f"The server is receiving {self.reading} request bodies already; retry shortly"
            )
        self.reading += 1
        try:
            yield
        finally:
            self.reading -= 1

    def _hold(self, n: int) -> None:
        if self.held + n > self.limits.max_bytes:
            raise Overloaded("The server is holding too many request bodies; retry shortly")
        self.held += n

    async def stream(
        self, request: Request, limit: int, too_large: RequestTooLarge, *, keep: bool
    ) -> AsyncGenerator[bytes, None]:
        """The body's chunks, refusing more than `limit` bytes (`too_large`) before reading
        past them. `keep`: the caller keeps every chunk until the end (a JSON body), so
        they all count against `max_bytes`; else only the chunk in hand does."""
        held = 0
        chunks = request.stream()
        async with self._slot():
            deadline = asyncio.get_running_loop().time() + self.limits.timeout
            size = 0
            try:
                while True:
                    # The deadline covers the waits for bytes, never the caller's own
                    # work between chunks (a timeout around a `yield` would cancel it).
                    async with asyncio.timeout_at(deadline):
                        chunk = await anext(chunks, None)
                    if chunk is None:
                        return
                    size += len(chunk)
                    if size > limit:
                        raise too_large
                    self._hold(len(chunk))
                    held += len(chunk)
                    yield chunk
                    if not keep:
                        self.held -= held
                        held = 0
            except TimeoutError:
                raise RequestTimeout(
                    f"The request body did not arrive within {self.limits.timeout:g} seconds"
                ) from None
            except ClientDisconnect:
                raise ClientGone() from None
            finally:
                self.held -= held
                await chunks.aclose()


def bodies_of(request: Request) -> Bodies:
    """The application's `Bodies` (a default one outside an application, in unit tests)."""
    app = request.scope.get("app")
    found = getattr(getattr(app, "state", None), "bodies", None)
    return found if isinstance(found, Bodies) else _DEFAULT


_DEFAULT = Bodies()
