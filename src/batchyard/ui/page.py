"""A dashboard page: the templates, `render`, and `page()`, which wraps every endpoint
(signed in, else the login form; errors as a page, or as text for a fragment)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from batchyard import __version__
from batchyard.errors import BatchyardError
from batchyard.ui import session
from batchyard.ui.session import LoginRequired, Viewer
from batchyard.ui.views import utc

HERE = Path(__file__).parent
_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.globals["version"] = __version__
_env.filters["num"] = lambda n: f"{n:,}"
_env.filters["utc"] = utc

HEADERS = {
    "cache-control": "no-store",
    "x-frame-options": "DENY",
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"
    ),
    "referrer-policy": "same-origin",
}

Handler = Callable[[Request, Viewer], Awaitable[Response]]


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = _env.get_template(name).render(ui=session.base(request), **context)
    return HTMLResponse(html, status_code=status_code, headers=HEADERS)


def page(fragment: bool = False) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """A dashboard endpoint: signed in (else the login form, or 401 for a fragment,
    which ui.js turns into a visit to the login form), errors as a page."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            viewer = None
            try:
                viewer = await session.viewer(request)
                return await handler(request, viewer)
            except LoginRequired as exc:
                if fragment:
                    return PlainTextResponse("sign in again", status_code=401, headers=HEADERS)
                response = render(
                    request, "login.html", 401 if exc.reason else 200, error=exc.reason
                )
                session.clear_cookies(response, request)
                return response
            except BatchyardError as exc:  # a store outage too: say so, stay signed in
                if fragment:
                    return PlainTextResponse(exc.message, exc.status_code, headers=HEADERS)
                return render(
                    request,
                    "error.html",
                    exc.status_code,
                    viewer=viewer,
                    status=exc.status_code,
                    exc=exc,
                )

        return endpoint

    return wrap
