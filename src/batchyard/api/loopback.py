"""Under `--no-auth` every caller is an admin, so "caller" must mean a program on this
machine. Binding to loopback keeps other machines out, but not web pages: a page on any
site whose name resolves to 127.0.0.1 (DNS rebinding) reaches the server with its own
name in `Host`, and any page can send a simple cross-site POST (a form, a multipart
upload) to 127.0.0.1 directly. So without keys the server answers only requests whose
`Host` names the loopback address it listens on, and refuses browsers' cross-site ones.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers

from batchyard.errors import PermissionDenied

_LOOPBACK_NAMES = {
    "127.0.0.1": ("127.0.0.1", "localhost"),
    "localhost": ("127.0.0.1", "localhost", "[::1]"),
    "::1": ("[::1]", "localhost"),
}


def loopback_hosts(host: str, port: int, public_base_url: str | None = None) -> frozenset[str]:
    """The `Host` values that name the server bound to `host`:`port`."""
    names = _LOOPBACK_NAMES.get(host, (f"[{host}]" if ":" in host else host,))
    allowed = {f"{name}:{port}" for name in names}
    if port == 80:
        allowed.update(names)
    if public_base_url:
        allowed.add(urlsplit(public_base_url).netloc.lower())
    return frozenset(allowed)


class LoopbackGuard:
    def __init__(self, hosts: frozenset[str]) -> None:
        self.hosts = hosts

    def check(self, headers: Headers) -> None:
        """Raises PermissionDenied for a request not from a program on this machine."""
        host = headers.get("host", "")
        if host.lower() not in self.hosts:
            raise PermissionDenied(
                f"Host {host!r} is not this server: without keys (--no-auth) it answers"
                f" only {', '.join(sorted(self.hosts))}"
            )
        origin = headers.get("origin")
        if origin is not None and urlsplit(origin).netloc.lower() not in self.hosts:
            raise PermissionDenied(
                "Requests from web pages of other sites are refused without keys (--no-auth)"
            )
        if headers.get("sec-fetch-site") in ("cross-site", "same-site"):
            raise PermissionDenied(
                "Requests from web pages of other sites are refused without keys (--no-auth)"
            )
