"""The web dashboard at `/ui`: server-rendered pages, and the fragments of them that
`ui.js` re-fetches every few seconds (batch progress, engine load). Every query is
scoped to the viewer's workspace exactly as the API's are."""

from __future__ import annotations

import functools
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from batchyard import __version__
from batchyard.api import state
from batchyard.auth.tenancy import Tenancy
from batchyard.errors import BatchyardError, InvalidRequest, NotFound, PermissionDenied
from batchyard.store.layout import RESULT_KINDS
from batchyard.store.port import Store
from batchyard.store.records import BatchRecord, BatchRow
from batchyard.ui import session
from batchyard.ui.session import LoginRequired, Viewer
from batchyard.ui.views import (
    CHART_BUCKETS,
    WorkerView,
    batch_view,
    engine_views,
    recent_done,
    result_view,
    timeline_view,
    timeline_window,
    usage_view,
    utc,
    worker_views,
)

_HERE = Path(__file__).parent
_env = Environment(
    loader=FileSystemLoader(_HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.globals["version"] = __version__
_env.filters["num"] = lambda n: f"{n:,}"
_env.filters["utc"] = utc

PAGE_SIZE = 50
BATCHES_PER_PAGE = 25
USAGE_HOURS = 24
_HEADERS = {
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
    return HTMLResponse(html, status_code=status_code, headers=_HEADERS)


def _store(request: Request) -> Store:
    value: Store = request.app.state.store
    return value


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
                    return PlainTextResponse("sign in again", status_code=401, headers=_HEADERS)
                response = render(
                    request, "login.html", 401 if exc.reason else 200, error=exc.reason
                )
                session.clear_cookies(response, request)
                return response
            except BatchyardError as exc:  # a store outage too: say so, stay signed in
                if fragment:
                    return PlainTextResponse(exc.message, exc.status_code, headers=_HEADERS)
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


async def root(request: Request) -> Response:
    """`/` is the dashboard."""
    return RedirectResponse(session.base(request), status_code=307)


async def login_form(request: Request) -> Response:
    return render(request, "login.html", error="")


async def login(request: Request) -> Response:
    form = await request.form()
    key = str(form.get("key") or "").strip()
    admission = request.app.state.admission
    try:
        session.check_origin(request)  # no signing a visitor in with someone else's key
        await admission.authenticator.authenticate(key or None)
    except BatchyardError as exc:
        return render(request, "login.html", exc.status_code, error=exc.message)
    response = RedirectResponse(session.base(request), status_code=303)
    session.set_cookie(response, request, session.KEY_COOKIE, key)
    response.delete_cookie(session.WORKSPACE_COOKIE, path=session.base(request))
    return response


@page()
async def logout(request: Request, viewer: Viewer) -> Response:
    form = await request.form()
    session.check_form(request, viewer, form.get("csrf"))
    response = RedirectResponse(session.base(request) + "/login", status_code=303)
    session.clear_cookies(response, request)
    return response


@page()
async def pick_workspace(request: Request, viewer: Viewer) -> Response:
    """An admin key's dashboard shows one workspace at a time; this picks it."""
    form = await request.form()
    session.check_form(request, viewer, form.get("csrf"))
    workspace_id = str(form.get("workspace") or "")
    admission = request.app.state.admission
    await admission.authenticator.workspace(viewer.principal, workspace_id or None)
    response = RedirectResponse(session.base(request), status_code=303)
    session.set_cookie(response, request, session.WORKSPACE_COOKIE, workspace_id)
    return response


async def _workspaces(request: Request, viewer: Viewer) -> list[Any]:
    if not viewer.principal.admin:
        return []
    tenancy: Tenancy = state.tenancy(request)
    found, _ = await tenancy.list_workspaces(100, None, None)
    return found


def _list_query(request: Request) -> tuple[int | None, str]:
    """(before: a batch number to list from, status: "", "running" or "ended")."""
    before = request.query_params.get("before") or None
    if before is not None and not before.isdigit():
        raise InvalidRequest("before: expected a batch number")
    status = request.query_params.get("status") or ""
    if status not in ("", "running", "ended"):
        raise InvalidRequest("status: expected running or ended")
    return (int(before) if before else None), status


async def _batch_list(request: Request, viewer: Viewer) -> dict[str, Any]:
    before, status = _list_query(request)
    rows, more = await _store(request).views.batches(
        viewer.workspace.id, BATCHES_PER_PAGE, before, status or None
    )
    now = time.time()
    return {
        "batches": [batch_view(r, now) for r in rows],
        "older": rows[-1].batch.seq if more and rows else None,
        "before": before,
        "status": status,
    }


@page()
async def index(request: Request, viewer: Viewer) -> Response:
    return render(
        request,
        "index.html",
        viewer=viewer,
        workspaces=await _workspaces(request, viewer),
        **await _batch_list(request, viewer),
        **await _engines(request),
        usage=await _usage(request, viewer),
        workers=await _workers(request, viewer),
    )


@page(fragment=True)
async def batches_fragment(request: Request, viewer: Viewer) -> Response:
    return render(request, "_batches.html", viewer=viewer, **await _batch_list(request, viewer))


async def _engines(request: Request) -> dict[str, Any]:
    worker = request.app.state.worker
    batches, queued = await _store(request).open_counts()
    return {
        "engines": engine_views(state.router(request)),
        "worker": worker,
        "open_batches": batches,
        "queued": queued,
    }


async def _workers(request: Request, viewer: Viewer) -> list[WorkerView] | None:
    """Every worker's report (admin keys only: hosts and the whole fleet's load)."""
    if not viewer.principal.admin:
        return None
    return worker_views(await _store(request).workers.list(), time.time())


@page(fragment=True)
async def workers_fragment(request: Request, viewer: Viewer) -> Response:
    workers = await _workers(request, viewer)
    if workers is None:
        raise PermissionDenied("The workers are shown to admin keys")
    return render(request, "_workers.html", workers=workers)


@page(fragment=True)
async def engines_fragment(request: Request, viewer: Viewer) -> Response:
    return render(request, "_engines.html", viewer=viewer, **await _engines(request))


async def _usage(request: Request, viewer: Viewer) -> Any:
    now = int(time.time())
    end = now - now % 3600 + 3600
    rows = await state.tenancy(request).store.usage(end - USAGE_HOURS * 3600, end)
    view = usage_view(rows, viewer.workspace.id, USAGE_HOURS)
    limits = request.app.state.admission.limits_of(viewer.workspace)
    return {"view": view, "limits": limits}


@page(fragment=True)
async def usage_fragment(request: Request, viewer: Viewer) -> Response:
    return render(request, "_usage.html", usage=await _usage(request, viewer))


async def _batch(request: Request, viewer: Viewer) -> BatchRow:
    batch_id = request.path_params["batch_id"]
    row = await _store(request).views.batch(viewer.workspace.id, batch_id)
    if row is None:
        raise NotFound(f"No batch {batch_id!r} in workspace {viewer.workspace.name!r}")
    return row


async def _summary(request: Request, viewer: Viewer) -> dict[str, Any]:
    row = await _batch(request, viewer)
    now = time.time()
    start, width, counts = await _timelines.get(_store(request), row.batch, now)
    recent = recent_done(counts, start, width, now) if row.batch.ended_at is None else None
    return {
        "batch": batch_view(row, now, recent),
        "timeline": timeline_view(counts, start, width),
    }


class TimelineCache:
    """A batch's timeline is one pass over its requests (~60 ms at 100k on SQLite):
    an ended batch's is kept (it won't change), a running one's for a few seconds,
    so the live summary every 2 s in many tabs does not rescan the batch each time.
    Per process; batch ids are unique store-wide (lookups come after the workspace check)."""

    def __init__(self, fresh_seconds: float = 5.0, entries: int = 256) -> None:
        self.fresh_seconds = fresh_seconds
        self.entries = entries
        self._kept: OrderedDict[str, tuple[float, bool, float, float, list[tuple[int, int]]]]
        self._kept = OrderedDict()

    async def get(
        self, store: Store, batch: BatchRecord, now: float
    ) -> tuple[float, float, list[tuple[int, int]]]:
        kept = self._kept.get(batch.id)
        if kept is not None:
            made_at, ended, start, width, counts = kept
            if ended or (batch.ended_at is None and now - made_at < self.fresh_seconds):
                self._kept.move_to_end(batch.id)
                return start, width, counts
        start, width = timeline_window(batch, now)
        counts = await store.views.timeline(batch, start, width, CHART_BUCKETS)
        self._kept[batch.id] = (now, batch.ended_at is not None, start, width, counts)
        self._kept.move_to_end(batch.id)
        while len(self._kept) > self.entries:
            self._kept.popitem(last=False)
        return start, width, counts


_timelines = TimelineCache()


def _results_query(request: Request) -> tuple[str, str | None, int]:
    q = request.query_params
    search = q.get("q", "").strip()[:200]
    kind = q.get("kind") or None
    if kind is not None and kind not in RESULT_KINDS:
        raise InvalidRequest(f"kind: expected one of {', '.join(RESULT_KINDS)}")
    raw_page = q.get("page", "1")
    if not raw_page.isdigit() or int(raw_page) < 1:
        raise InvalidRequest("page: expected a page number from 1")
    return search, kind, int(raw_page)


@page()
async def batch_page(request: Request, viewer: Viewer) -> Response:
    search, kind, number = _results_query(request)
    summary = await _summary(request, viewer)
    record: BatchRecord = summary["batch"].record
    rows, matching = await _store(request).views.results(
        record, search=search, kind=kind, offset=(number - 1) * PAGE_SIZE, limit=PAGE_SIZE
    )
    pages = max(1, -(-matching // PAGE_SIZE))
    return render(
        request,
        "batch.html",
        viewer=viewer,
        **summary,
        results=[result_view(r) for r in rows],
        matching=matching,
        search=search,
        kind=kind or "",
        kinds=list(RESULT_KINDS),
        page=number,
        pages=pages,
        first=(number - 1) * PAGE_SIZE + 1,
    )


@page(fragment=True)
async def batch_fragment(request: Request, viewer: Viewer) -> Response:
    return render(request, "_summary.html", viewer=viewer, **await _summary(request, viewer))


@page()
async def result_page(request: Request, viewer: Viewer) -> Response:
    record = (await _batch(request, viewer)).batch
    custom_id = request.path_params["custom_id"]
    found = await _store(request).views.result(record, custom_id)
    if found is None:
        raise NotFound(f"Request {custom_id!r} of {record.id} has no result (yet)")
    return render(request, "result.html", viewer=viewer, batch=record, result=result_view(found))


@page()
async def find(request: Request, viewer: Viewer) -> Response:
    """Open a batch by id: a Message Batches id, or an OpenAI Batch API `batch_…` id."""
    wanted = request.query_params.get("id", "").strip()
    if wanted.startswith("batch_"):
        found = await _store(request).openai_batches.get(viewer.workspace.id, wanted)
        if found is None:
            raise NotFound(f"No batch {wanted!r} in workspace {viewer.workspace.name!r}")
        record, _ = found
        if record.batch_id is None:
            raise NotFound(f"{wanted} failed validation: it has no requests to show")
        wanted = record.batch_id
    if (await _store(request).views.batch(viewer.workspace.id, wanted)) is None:
        raise NotFound(f"No batch {wanted!r} in workspace {viewer.workspace.name!r}")
    return RedirectResponse(f"{session.base(request)}/batches/{quote(wanted)}", status_code=303)


@page()
async def cancel(request: Request, viewer: Viewer) -> Response:
    form = await request.form()
    session.check_form(request, viewer, form.get("csrf"))
    batch_id = request.path_params["batch_id"]
    await state.batch_service(request).cancel(viewer.workspace.id, batch_id)
    return RedirectResponse(f"{session.base(request)}/batches/{batch_id}", status_code=303)


@page()
async def delete(request: Request, viewer: Viewer) -> Response:
    """Delete an ended batch and its results (as the API's delete)."""
    form = await request.form()
    session.check_form(request, viewer, form.get("csrf"))
    await state.batch_service(request).delete(viewer.workspace.id, request.path_params["batch_id"])
    return RedirectResponse(session.base(request), status_code=303)


@page()
async def download(request: Request, viewer: Viewer) -> Response:
    """The results JSONL (those so far, while the batch runs), as the API serves them."""
    batch_id = request.path_params["batch_id"]
    lines = await state.batch_service(request).results(viewer.workspace.id, batch_id, partial=True)
    return StreamingResponse(
        lines,
        media_type="application/x-jsonl",
        headers={"content-disposition": f'attachment; filename="{batch_id}_results.jsonl"'},
    )


routes: list[BaseRoute] = [
    Route("/", root),
    Route("/ui", index),
    Route("/ui/login", login_form, methods=["GET"]),
    Route("/ui/login", login, methods=["POST"]),
    Route("/ui/logout", logout, methods=["POST"]),
    Route("/ui/workspace", pick_workspace, methods=["POST"]),
    Route("/ui/fragments/batches", batches_fragment),
    Route("/ui/fragments/engines", engines_fragment),
    Route("/ui/fragments/usage", usage_fragment),
    Route("/ui/fragments/workers", workers_fragment),
    Route("/ui/fragments/batches/{batch_id}", batch_fragment),
    Route("/ui/find", find),
    Route("/ui/batches/{batch_id}", batch_page),
    Route("/ui/batches/{batch_id}/results.jsonl", download),
    Route("/ui/batches/{batch_id}/results/{custom_id}", result_page),
    Route("/ui/batches/{batch_id}/cancel", cancel, methods=["POST"]),
    Route("/ui/batches/{batch_id}/delete", delete, methods=["POST"]),
    Mount("/ui/static", StaticFiles(directory=_HERE / "static"), name="ui-static"),
]
