"""`GET /v1/models` and `GET /v1/models/{model_id}`: the routing table's listable models."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from batchyard.api import state
from batchyard.api.endpoints import PAGE, Doc, Endpoint, path_param
from batchyard.api.requests import page_limit
from batchyard.api.responses import json_response
from batchyard.errors import InvalidRequest
from batchyard.wire.models import ModelPage


async def list_models(request: Request) -> Response:
    models = state.inference(request).models()
    ids = [m.id for m in models]
    limit = page_limit(request)
    after, before = request.query_params.get("after_id"), request.query_params.get("before_id")
    for name, cursor in (("after_id", after), ("before_id", before)):
        if cursor is not None and cursor not in ids:
            raise InvalidRequest(f"{name}: no model with id {cursor!r}")
    if before is not None:
        end = ids.index(before)
        start = max(0, end - limit)
        page, has_more = models[start:end], start > 0
    else:
        start = ids.index(after) + 1 if after is not None else 0
        page, has_more = models[start : start + limit], start + limit < len(models)
    return json_response(
        ModelPage(
            data=page,
            has_more=has_more,
            first_id=page[0].id if page else None,
            last_id=page[-1].id if page else None,
        )
    )


async def retrieve_model(request: Request) -> Response:
    return json_response(state.inference(request).model(request.path_params["model_id"]))


endpoints = [
    Endpoint("GET", "/v1/models", list_models, doc=Doc("List models", "ModelPage", params=PAGE)),
    Endpoint(
        "GET", "/v1/models/{model_id:path}", retrieve_model,
        doc=Doc("Retrieve a model", "ModelInfo", params=path_param("model_id")),
    ),
]  # fmt: skip
