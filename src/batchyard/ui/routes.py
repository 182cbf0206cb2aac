"""The web dashboard at `/ui`: server-rendered pages, and the fragments of them that
`ui.js` re-fetches every few seconds (batch progress, engine load). Every query is
scoped to the viewer's workspace exactly as the API's are.

The route table; the pages are in `signin`, `overview` (the front page and its
panels) and `batch_pages` (one batch), their reads in `services.dashboard`."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from batchyard.ui import batch_pages, overview, signin
from batchyard.ui.page import HERE

routes: list[BaseRoute] = [
    Route("/", signin.root),
    Route("/ui", overview.index),
    Route("/ui/login", signin.login_form, methods=["GET"]),
    Route("/ui/login", signin.login, methods=["POST"]),
    Route("/ui/logout", signin.logout, methods=["POST"]),
    Route("/ui/workspace", signin.pick_workspace, methods=["POST"]),
    Route("/ui/fragments/batches", overview.batches_fragment),
    Route("/ui/fragments/engines", overview.engines_fragment),
    Route("/ui/fragments/usage", overview.usage_fragment),
    Route("/ui/fragments/workers", overview.workers_fragment),
    Route("/ui/fragments/batches/{batch_id}", batch_pages.batch_fragment),
    Route("/ui/find", batch_pages.find),
    Route("/ui/batches/{batch_id}", batch_pages.batch_page),
    Route("/ui/batches/{batch_id}/results.jsonl", batch_pages.download),
    Route("/ui/batches/{batch_id}/results/{custom_id}", batch_pages.result_page),
    Route("/ui/batches/{batch_id}/cancel", batch_pages.cancel, methods=["POST"]),
    Route("/ui/batches/{batch_id}/delete", batch_pages.delete, methods=["POST"]),
    Mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static"),
]
