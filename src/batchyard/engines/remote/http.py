"""The remote engines' HTTP client: aiohttp, made for many requests at once.

At GPU speed the client's own cost per request decides the rate: httpx's connection
pool looks at every pooled connection for every request it places (O(connections x
waiting requests)), and was half of a worker's time against a fast upstream. aiohttp's
pool hands a free keep-alive connection over in constant time. Bodies go out as bytes
encoded by msgspec and come back as bytes (`Reply`), decoded once by the caller.

Connections are not capped here: the engine's priority slots already bound the calls
in flight, so the keep-alive pool grows to the engine's concurrency and no further.
The session is made on first use, inside the event loop that uses it (again in another
loop). TLS trusts the roots httpx trusted (SSL_CERT_FILE / SSL_CERT_DIR, else certifi's).
The proxy from the environment (`HTTP(S)_PROXY`, `NO_PROXY`, as httpx read them) is
looked up once, not per request as aiohttp's `trust_env` does (with a read of ~/.netrc
each time: a third of a worker's time against a fast upstream).
"""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
import urllib.request
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import certifi
from yarl import URL

from batchyard.engines.remote.errors import unreachable

JSON = {"content-type": "application/json"}


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer read whole: its status, headers and body."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes
    reason_phrase: str = ""


class Upstream:
    """POSTs of JSON bodies to one base URL, on keep-alive connections."""

    def __init__(
        self,
        base_url: str,
        who: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 600.0,
        connect_timeout: float = 10.0,
    ) -> None:
        """`who` names the upstream in errors; `timeout` bounds each read of an answer
        (a stream may take longer as a whole, as long as it keeps sending)."""
        self.base_url = base_url.rstrip("/")
        self.who = who
        self._headers = dict(headers or {})
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=timeout
        )
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._urls: dict[str, URL] = {}
        self._proxy = proxy_for(self.base_url)

    def _url(self, path: str) -> URL:
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = URL(self.base_url + path)
        return url

    def _open(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=0, ssl=_tls()),
                proxy=self._proxy,
            )
            self._loop = loop
        return self._session

    async def post(self, path: str, body: bytes) -> Reply:
        """POST `body` (JSON) to `path`; the answer whatever its status. Raises
        EngineError (retryable) when the upstream cannot be reached or does not answer."""
        try:
            async with self._open().post(self._url(path), data=body, headers=JSON) as response:
                content = await response.read()
                return Reply(response.status, response.headers, content, response.reason or "")
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise unreachable(exc, self.who) from None

    @asynccontextmanager
    async def stream(self, path: str, body: bytes) -> AsyncIterator[Stream]:
        """POST `body` and hold the answer open: a 200's lines are read from the Stream;
        any other status is read whole (`Stream.reply`)."""
        try:
            async with self._open().post(self._url(path), data=body, headers=JSON) as response:
                if response.status == 200:
                    yield Stream(response, None, self.who)
                else:
                    content = await response.read()
                    reply = Reply(response.status, response.headers, content, response.reason or "")
                    yield Stream(response, reply, self.who)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise unreachable(exc, self.who) from None

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and self._loop is asyncio.get_running_loop():
            await session.close()


@functools.cache
def _tls() -> ssl.SSLContext:
    """The roots httpx trusts: SSL_CERT_FILE or SSL_CERT_DIR where set, else certifi's."""
    if cafile := os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=cafile)
    if capath := os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=capath)
    return ssl.create_default_context(cafile=certifi.where())


def proxy_for(url: str) -> str | None:
    """The proxy the environment names for `url` (None: none, or `NO_PROXY` says so)."""
    parsed = URL(url)
    proxy = urllib.request.getproxies().get(parsed.scheme)
    if proxy is None or urllib.request.proxy_bypass(parsed.host or ""):
        return None
    return proxy


class Stream:
    """An answer being read: `reply` when it was not a 200 (read whole), else `lines()`."""

    def __init__(self, response: aiohttp.ClientResponse, reply: Reply | None, who: str) -> None:
        self._response = response
        self.reply = reply
        self._who = who

    async def lines(self) -> AsyncIterator[bytes]:
        """The body's lines as they arrive, without their line ends (of any length)."""
        pending = b""
        try:
            async for chunk in self._response.content.iter_any():
                pending += chunk
                *whole, pending = pending.split(b"\n")
                for line in whole:
                    yield line.rstrip(b"\r")
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise unreachable(exc, self._who) from None
        if pending:
            yield pending.rstrip(b"\r")
