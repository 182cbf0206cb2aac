"""Signing in and out of the dashboard, and an admin key's choice of workspace."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from batchyard.api import state
from batchyard.api.requests import read_form_fields
from batchyard.errors import BatchyardError
from batchyard.ui import session
from batchyard.ui.page import page, render
from batchyard.ui.session import Viewer


async def root(request: Request) -> Response:
    """`/` is the dashboard."""
    return RedirectResponse(session.base(request), status_code=307)


async def login_form(request: Request) -> Response:
    return render(request, "login.html", error="")


async def login(request: Request) -> Response:
    try:
        session.check_origin(request)  # no signing a visitor in with someone else's key
        form = await read_form_fields(request)
        key = str(form.get("key") or "").strip()
        await state.admission(request).authenticator.authenticate(key or None)
    except BatchyardError as exc:
        return render(request, "login.html", exc.status_code, error=exc.message)
    response = RedirectResponse(session.base(request), status_code=303)
    session.set_cookie(response, request, session.KEY_COOKIE, key)
    response.delete_cookie(session.WORKSPACE_COOKIE, path=session.base(request))
    return response


@page()
async def logout(request: Request, viewer: Viewer) -> Response:
    form = await read_form_fields(request)
    session.check_form(request, viewer, form.get("csrf"))
    response = RedirectResponse(session.base(request) + "/login", status_code=303)
    session.clear_cookies(response, request)
    return response


@page()
async def pick_workspace(request: Request, viewer: Viewer) -> Response:
    """An admin key's dashboard shows one workspace at a time; this picks it."""
    form = await read_form_fields(request)
    session.check_form(request, viewer, form.get("csrf"))
    workspace_id = str(form.get("workspace") or "")
    await state.admission(request).authenticator.workspace(viewer.principal, workspace_id or None)
    response = RedirectResponse(session.base(request), status_code=303)
    session.set_cookie(response, request, session.WORKSPACE_COOKIE, workspace_id)
    return response
