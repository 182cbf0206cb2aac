"""Who is looking at the dashboard: the API key pasted into the login form, kept in an
HttpOnly, SameSite=Strict cookie, checked by the same Authenticator as every API call
(a revoked key is logged out on its next page). Forms that change something carry a
CSRF token derived from that key, and their Origin must be this server."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from batchyard.api import state
from batchyard.auth.principal import Principal
from batchyard.errors import AuthenticationFailed, NotFound, PermissionDenied
from batchyard.store.records import WorkspaceRecord

KEY_COOKIE = "batchyard_key"
WORKSPACE_COOKIE = "batchyard_workspace"

_PROCESS_SECRET = secrets.token_hex(32)
"""Stands in for the key when the server runs with --no-auth (no key, no cookie)."""


class LoginRequired(Exception):
    """No key, or one that is no longer accepted: the login form, saying why."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Viewer:
    principal: Principal
    workspace: WorkspaceRecord
    csrf: str
    signed_in: bool
    """False with --no-auth (there is nothing to sign out of)."""


def csrf_token(key: str | None) -> str:
    secret = key if key is not None else _PROCESS_SECRET
    return hashlib.sha256(b"batchyard-ui-csrf:" + secret.encode()).hexdigest()[:40]


async def viewer(request: Request) -> Viewer:
    """The principal and workspace of this dashboard request, or LoginRequired."""
    authenticator = state.admission(request).authenticator
    key = request.cookies.get(KEY_COOKIE) or None
    try:
        principal = await authenticator.authenticate(key)
    except AuthenticationFailed as exc:  # (a store outage is not a reason to sign out)
        raise LoginRequired(exc.message if key else "") from exc
    requested = request.cookies.get(WORKSPACE_COOKIE) or None
    try:
        workspace = await authenticator.workspace(principal, requested)
    except (NotFound, PermissionDenied):
        if requested is None:
            raise
        # A workspace archived or gone since it was picked: back to the key's own.
        workspace = await authenticator.workspace(principal, None)
    return Viewer(principal, workspace, csrf_token(key), signed_in=authenticator.enabled)


def check_form(request: Request, viewer: Viewer, token: object) -> None:
    """A state-changing form: its CSRF token matches and it came from this origin."""
    if not isinstance(token, str) or not hmac.compare_digest(token, viewer.csrf):
        raise PermissionDenied("The form is out of date: reload the page and try again")
    check_origin(request)


def check_origin(request: Request) -> None:
    """Browsers name the page a form was posted from: it must be this server, as the
    browser reached it (Host, a proxy's X-Forwarded-Host, or --public-base-url).
    `Origin: null` (a sandboxed frame, a page reached through a cross-site redirect) is
    not this server; a request with no Origin is no browser's, unless its
    `Sec-Fetch-Site` says the browser sent it from another site."""
    origin = request.headers.get("origin")
    if origin is None:
        if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            raise PermissionDenied("The form came from another site")
        return
    if not same_origin(request, origin):
        raise PermissionDenied("The form came from another site")


def same_origin(request: Request, origin: str) -> bool:
    """`origin` (an Origin header's value) is this server as the client reached it."""
    if origin == "null":
        return False
    ours = {request.headers.get("host"), request.headers.get("x-forwarded-host")}
    public = state.batch_service(request).public_base_url
    if public:
        ours.add(urlsplit(public).netloc)
    return urlsplit(origin).netloc in ours - {None}


def base(request: Request) -> str:
    """Where the dashboard is: `/ui`, under `--path-prefix` when served through it."""
    return str(request.scope.get("root_path", "")).rstrip("/") + "/ui"


def set_cookie(response: Response, request: Request, name: str, value: str) -> None:
    response.set_cookie(
        name,
        value,
        path=base(request),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookies(response: Response, request: Request) -> None:
    for name in (KEY_COOKIE, WORKSPACE_COOKIE):
        response.delete_cookie(name, path=base(request))
