"""The web dashboard at `/ui`: server-rendered pages, and the fragments of them that
`ui.js` re-fetches every few seconds (batch progress, engine load). Every query is
scoped to the viewer's workspace exactly as the API's are.

The route table; the pages are in `signin`, `overview` (the front page and its
panels) and `batch_pages` (one batch), their reads in `services.dashboard`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from batchyard.api.endpoints import Endpoint, Handler
from batchyard.ui import batch_pages, overview, signin
from batchyard.ui.page import HERE

_static = StaticFiles(directory=HERE / "static")


async def static(request: Request) -> Response:
    """The dashboard's script and styles (StaticFiles keeps the lookup inside the folder)."""
    return await _static.get_response(request.path_params["path"], request.scope)


def _page(path: str, handler: Handler, method: str = "GET") -> Endpoint:
    """A dashboard page: public to admission, as the dashboard signs its viewers in itself."""
    return Endpoint(method, path, handler, access="public")


endpoints = [
    _page("/", signin.root),
    _page("/ui", overview.index),
    _page("/ui/login", signin.login_form),
    _page("/ui/login", signin.login, "POST"),
    _page("/ui/logout", signin.logout, "POST"),
    _page("/ui/workspace", signin.pick_workspace, "POST"),
    _page("/ui/fragments/batches", overview.batches_fragment),
    _page("/ui/fragments/engines", overview.engines_fragment),
    _page("/ui/fragments/usage", overview.usage_fragment),
    _page("/ui/fragments/workers", overview.workers_fragment),
    _page("/ui/fragments/batches/{batch_id}", batch_pages.batch_fragment),
    _page("/ui/find", batch_pages.find),
    _page("/ui/batches/{batch_id}", batch_pages.batch_page),
    _page("/ui/batches/{batch_id}/results.jsonl", batch_pages.download),
    _page("/ui/batches/{batch_id}/results/{custom_id}", batch_pages.result_page),
    _page("/ui/batches/{batch_id}/cancel", batch_pages.cancel, "POST"),
    _page("/ui/batches/{batch_id}/delete", batch_pages.delete, "POST"),
    _page("/ui/static/{path:path}", static),
]
