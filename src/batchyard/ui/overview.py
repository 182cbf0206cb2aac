"""The dashboard's front page and the panels of it that `ui.js` re-fetches: the
batches (all, running or ended), the engines' load, the workspace's usage and, for
admin keys, the workers."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from batchyard.api import state
from batchyard.errors import InvalidRequest, PermissionDenied
from batchyard.store.records import WorkspaceRecord
from batchyard.ui.page import page, render
from batchyard.ui.session import Viewer
from batchyard.ui.views import WorkerView, batch_view, engine_views, usage_view, worker_views

BATCHES_PER_PAGE = 25
USAGE_HOURS = 24


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


@page(fragment=True)
async def workers_fragment(request: Request, viewer: Viewer) -> Response:
    workers = await _workers(request, viewer)
    if workers is None:
        raise PermissionDenied("The workers are shown to admin keys")
    return render(request, "_workers.html", workers=workers)


@page(fragment=True)
async def engines_fragment(request: Request, viewer: Viewer) -> Response:
    return render(request, "_engines.html", viewer=viewer, **await _engines(request))


@page(fragment=True)
async def usage_fragment(request: Request, viewer: Viewer) -> Response:
    return render(request, "_usage.html", usage=await _usage(request, viewer))


async def _workspaces(request: Request, viewer: Viewer) -> list[WorkspaceRecord]:
    if not viewer.principal.admin:
        return []
    found, _ = await state.tenancy(request).list_workspaces(100, None, None)
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
    dashboard = state.dashboard(request)
    rows, more = await dashboard.batches(
        viewer.workspace.id, BATCHES_PER_PAGE, before, status or None
    )
    etas = await dashboard.etas([r.batch for r in rows])
    now = dashboard.now()
    return {
        "batches": [batch_view(r, now, etas[r.batch.id]) for r in rows],
        "older": rows[-1].batch.seq if more and rows else None,
        "before": before,
        "status": status,
    }


async def _engines(request: Request) -> dict[str, Any]:
    batches, queued = await state.dashboard(request).open_counts()
    return {
        "engines": engine_views(state.inference(request).router),
        "worker": state.worker_status(request),
        "open_batches": batches,
        "queued": queued,
    }


async def _workers(request: Request, viewer: Viewer) -> list[WorkerView] | None:
    """Every worker's report (admin keys only: hosts and the whole fleet's load)."""
    if not viewer.principal.admin:
        return None
    dashboard = state.dashboard(request)
    return worker_views(await dashboard.workers(), dashboard.now())


async def _usage(request: Request, viewer: Viewer) -> dict[str, Any]:
    rows = await state.dashboard(request).usage(USAGE_HOURS)
    view = usage_view(rows, viewer.workspace.id, USAGE_HOURS)
    limits = state.admission(request).limits_of(viewer.workspace)
    return {"view": view, "limits": limits}
