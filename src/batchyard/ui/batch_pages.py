"""One batch on the dashboard: its page (summary, throughput, the results viewer), the
live summary, one result's page, opening a batch by id, cancel, delete and download."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from batchyard.api import state
from batchyard.api.requests import read_form_fields
from batchyard.errors import InvalidRequest
from batchyard.services.dashboard import RESULT_KINDS
from batchyard.store.records import BatchRecord
from batchyard.ui import session
from batchyard.ui.page import page, render
from batchyard.ui.session import Viewer
from batchyard.ui.views import batch_view, result_view, timeline_view

PAGE_SIZE = 50


async def _summary(request: Request, viewer: Viewer) -> dict[str, Any]:
    dashboard = state.dashboard(request)
    row = await dashboard.batch(viewer.workspace, request.path_params["batch_id"])
    now = dashboard.now()
    start, width, counts = await dashboard.timeline(row.batch, now)
    return {
        "batch": batch_view(row, now, await dashboard.eta(row.batch)),
        "timeline": timeline_view(counts, start, width),
    }


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
    rows, matching = await state.dashboard(request).results(
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
    dashboard = state.dashboard(request)
    record = (await dashboard.batch(viewer.workspace, request.path_params["batch_id"])).batch
    found = await dashboard.result(record, request.path_params["custom_id"])
    return render(request, "result.html", viewer=viewer, batch=record, result=result_view(found))


@page()
async def find(request: Request, viewer: Viewer) -> Response:
    """Open a batch by id: a Message Batches id, or an OpenAI Batch API `batch_…` id."""
    wanted = request.query_params.get("id", "").strip()
    batch_id = await state.dashboard(request).find(viewer.workspace, wanted)
    return RedirectResponse(f"{session.base(request)}/batches/{quote(batch_id)}", status_code=303)


@page()
async def cancel(request: Request, viewer: Viewer) -> Response:
    form = await read_form_fields(request)
    session.check_form(request, viewer, form.get("csrf"))
    batch_id = request.path_params["batch_id"]
    await state.batch_service(request).cancel(viewer.workspace.id, batch_id)
    return RedirectResponse(f"{session.base(request)}/batches/{batch_id}", status_code=303)


@page()
async def delete(request: Request, viewer: Viewer) -> Response:
    """Delete an ended batch and its results (as the API's delete)."""
    form = await read_form_fields(request)
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
