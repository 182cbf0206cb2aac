"""`GET /openapi.json`: the API's OpenAPI 3.1 document, built from the same msgspec
structs that decode and encode the wire, so it cannot drift from what is served."""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Sequence
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from batchyard import __version__
from batchyard.api.endpoints import Doc, Endpoint
from batchyard.api.routes import ENDPOINTS
from batchyard.wire import admin
from batchyard.wire.batches import DeletedMessageBatch, MessageBatch, MessageBatchPage
from batchyard.wire.completions import Completion, CompletionCreateParams
from batchyard.wire.errors import ErrorResponse
from batchyard.wire.messages import (
    CountTokensParams,
    CountTokensResult,
    Message,
    MessageCreateParams,
)
from batchyard.wire.models import ModelInfo, ModelPage
from batchyard.wire.openai import (
    Batch,
    BatchCreateIn,
    BatchList,
    FileDeleted,
    FileList,
    FileObject,
)

_TYPES: list[Any] = [
    MessageCreateParams,
    CountTokensParams,
    Message,
    CountTokensResult,
    CompletionCreateParams,
    Completion,
    MessageBatch,
    MessageBatchPage,
    DeletedMessageBatch,
    ModelInfo,
    ModelPage,
    ErrorResponse,
    admin.Workspace,
    admin.WorkspacePage,
    admin.WorkspaceCreateIn,
    admin.WorkspaceUpdateIn,
    admin.ApiKey,
    admin.ApiKeyPage,
    admin.CreatedApiKey,
    admin.ApiKeyCreateIn,
    admin.ApiKeyUpdateIn,
    admin.UsageReport,
    admin.OrganizationInfo,
    Batch,
    BatchCreateIn,
    BatchList,
    FileObject,
    FileList,
    FileDeleted,
]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": _ref(name)}}}


_VERSION = {
    "name": "anthropic-version",
    "in": "header",
    "required": True,
    "schema": {"type": "string", "example": "2023-06-01"},
}
_ERRORS = {
    str(code): {"description": text, **_json("ErrorResponse")}
    for code, text in (
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (503, "the store is unavailable; retry"),
    )
}


def _operation(endpoint: Endpoint, doc: Doc) -> dict[str, Any]:
    response = doc.response
    ok = {"description": "OK", **_json(response)} if isinstance(response, str) else response
    op: dict[str, Any] = {
        "summary": doc.summary,
        "parameters": ([_VERSION] if endpoint.version else []) + list(doc.params),
        "responses": {"200": ok, **_ERRORS},
    }
    if doc.body:
        op["requestBody"] = {"required": True, **_json(doc.body)}
    return op


def _paths(endpoints: Sequence[Endpoint]) -> dict[str, Any]:
    """Every endpoint of the route table that has a line in the document."""
    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        if e.doc is not None:
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", e.path)  # starlette's {x:path} is {x}
            paths.setdefault(path, {})[e.method.lower()] = _operation(e, e.doc)
    return paths


_BATCH_CREATE = {
    "type": "object",
    "required": ["requests"],
    "properties": {
        "requests": {
            "type": "array",
            "minItems": 1,
            "maxItems": 100_000,
            "items": {
                "type": "object",
                "required": ["custom_id", "params"],
                "properties": {
                    "custom_id": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,64}$"},
                    "params": _ref("MessageCreateParams"),
                },
            },
        }
    },
}
"""The create body: its `params` are kept as raw bytes by the decoder; documented as
the Messages request they must be."""

_CHAT_REQUEST = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": {
        "model": {"type": "string"},
        "max_tokens": {"type": "integer"},
        "temperature": {"type": "number"},
        "stop": {"type": "array", "items": {"type": "string"}},
        "messages": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["role", "content"],
                "properties": {
                    "role": {"enum": ["system", "developer", "user", "assistant", "tool"]},
                    "content": {"type": "string"},
                },
            },
        },
    },
}


@functools.cache
def document() -> bytes:
    _, components = msgspec.json.schema_components(
        _TYPES, ref_template="#/components/schemas/{name}"
    )
    components["BatchCreate"] = _BATCH_CREATE
    components["ChatRequest"] = _CHAT_REQUEST
    doc = {
        "openapi": "3.1.0",
        "info": {
            "title": "batchyard",
            "version": __version__,
            "description": "The Anthropic Message Batches API (and Messages, Models, Admin), "
            "self-hosted.",
        },
        "components": {
            "schemas": components,
            "securitySchemes": {
                "ApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                "Bearer": {"type": "http", "scheme": "bearer"},
            },
        },
        "security": [{"ApiKey": []}, {"Bearer": []}],
        "paths": _paths(ENDPOINTS),
    }
    return msgspec.json.encode(doc)


async def openapi(request: Request) -> Response:
    return Response(document(), media_type="application/json")


@functools.cache
def docs_page() -> str:
    """A small HTML page of the operations (no scripts, nothing fetched from elsewhere)."""
    doc = msgspec.json.decode(document())
    rows = []
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            schema = body.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1]
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(op['summary'])}</td><td>{html.escape(schema)}</td></tr>"
            )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>batchyard API</title>"
        "<style>body{font:15px system-ui,sans-serif;margin:2em}td{padding:.25em 1em}"
        "tr:nth-child(even){background:#f3f3f3}</style></head><body>"
        f"<h1>batchyard {html.escape(doc['info']['version'])}</h1>"
        f"<p>{html.escape(doc['info']['description'])} The full schema:"
        " <a href='openapi.json'>openapi.json</a> (OpenAPI 3.1).</p>"
        "<table><tr><th>method</th><th>path</th><th>what</th><th>body</th></tr>"
        + "".join(rows)
        + "</table></body></html>"
    )


async def docs(request: Request) -> Response:
    return HTMLResponse(docs_page())


endpoints = [
    Endpoint("GET", "/openapi.json", openapi, access="public"),
    Endpoint("GET", "/docs", docs, access="public"),
]
