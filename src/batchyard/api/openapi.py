"""`GET /openapi.json`: the API's OpenAPI 3.1 document, built from the same msgspec
structs that decode and encode the wire, so it cannot drift from what is served."""

from __future__ import annotations

import functools
import html
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from batchyard import __version__
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
_ID = {"in": "path", "required": True, "schema": {"type": "string"}}
_PAGE = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
    {"name": "after_id", "in": "query", "schema": {"type": "string"}},
    {"name": "before_id", "in": "query", "schema": {"type": "string"}},
]
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


def _op(
    summary: str,
    response: str | dict[str, Any],
    *,
    body: str | None = None,
    params: list[dict[str, Any]] | None = None,
    version: bool = True,
) -> dict[str, Any]:
    ok = {"description": "OK", **_json(response)} if isinstance(response, str) else response
    op: dict[str, Any] = {
        "summary": summary,
        "parameters": ([_VERSION] if version else []) + (params or []),
        "responses": {"200": ok, **_ERRORS},
    }
    if body:
        op["requestBody"] = {"required": True, **_json(body)}
    return op


_BATCH = [{"name": "batch_id", **_ID}]
_FILE = [{"name": "file_id", **_ID}]
_JSONL = {
    "description": "One JSON object per line",
    "content": {"application/x-jsonl": {"schema": {"type": "string"}}},
}


def _message_paths() -> dict[str, Any]:
    """Message Batches, Messages and Models."""
    return {
        "/v1/messages/batches": {
            "post": _op("Create a message batch", "MessageBatch", body="BatchCreate"),
            "get": _op("List message batches, newest first", "MessageBatchPage", params=_PAGE),
        },
        "/v1/messages/batches/{batch_id}": {
            "get": _op("Retrieve a message batch", "MessageBatch", params=_BATCH),
            "delete": _op("Delete an ended batch", "DeletedMessageBatch", params=_BATCH),
        },
        "/v1/messages/batches/{batch_id}/cancel": {
            "post": _op("Cancel a message batch", "MessageBatch", params=_BATCH)
        },
        "/v1/messages/batches/{batch_id}/results": {
            "get": _op("Results as JSONL", _JSONL, params=_BATCH)
        },
        "/v1/messages": {"post": _op("Create a message", "Message", body="MessageCreateParams")},
        "/v1/messages/count_tokens": {
            "post": _op("Count input tokens", "CountTokensResult", body="CountTokensParams")
        },
        "/v1/complete": {
            "post": _op(
                "Create a Text Completion (legacy)", "Completion", body="CompletionCreateParams"
            )
        },
        "/v1/models": {"get": _op("List models", "ModelPage", params=_PAGE, version=False)},
        "/v1/models/{model_id}": {
            "get": _op(
                "Retrieve a model",
                "ModelInfo",
                params=[{"name": "model_id", **_ID}],
                version=False,
            )
        },
    }


def _admin_paths() -> dict[str, Any]:
    """The Admin API: the organization, workspaces, API keys and usage."""
    workspace = [{"name": "workspace_id", **_ID}]
    key = [{"name": "api_key_id", **_ID}]
    usage_query: list[dict[str, Any]] = [
        {"name": "starting_at", "in": "query", "required": True, "schema": {"type": "string"}},
        {"name": "ending_at", "in": "query", "schema": {"type": "string"}},
        {"name": "bucket_width", "in": "query", "schema": {"enum": ["1h", "1d"]}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
        {"name": "page", "in": "query", "schema": {"type": "string"}},
    ]
    return {
        "/v1/organizations/me": {"get": _op("The organization", "OrganizationInfo")},
        "/v1/organizations/workspaces": {
            "get": _op("List workspaces", "WorkspacePage", params=_PAGE),
            "post": _op("Create a workspace", "Workspace", body="WorkspaceCreateIn"),
        },
        "/v1/organizations/workspaces/{workspace_id}": {
            "get": _op("Retrieve a workspace", "Workspace", params=workspace),
            "post": _op(
                "Update a workspace", "Workspace", body="WorkspaceUpdateIn", params=workspace
            ),
        },
        "/v1/organizations/workspaces/{workspace_id}/archive": {
            "post": _op("Archive a workspace and its keys", "Workspace", params=workspace)
        },
        "/v1/organizations/api_keys": {
            "get": _op("List API keys", "ApiKeyPage", params=_PAGE),
            "post": _op("Create an API key (batchyard)", "CreatedApiKey", body="ApiKeyCreateIn"),
        },
        "/v1/organizations/api_keys/{api_key_id}": {
            "get": _op("Retrieve an API key", "ApiKey", params=key),
            "post": _op("Update an API key", "ApiKey", body="ApiKeyUpdateIn", params=key),
        },
        "/v1/organizations/usage_report/messages": {
            "get": _op("Usage report", "UsageReport", params=usage_query)
        },
    }


def _openai_paths() -> dict[str, Any]:
    """The OpenAI dialect (no anthropic-version; errors in OpenAI's shape)."""
    after = [
        {"name": "limit", "in": "query", "schema": {"type": "integer"}},
        {"name": "after", "in": "query", "schema": {"type": "string"}},
    ]
    return {
        "/v1/batches": {
            "post": _op("Create an OpenAI batch", "Batch", body="BatchCreateIn", version=False),
            "get": _op("List OpenAI batches", "BatchList", params=after, version=False),
        },
        "/v1/batches/{batch_id}": {
            "get": _op("Retrieve an OpenAI batch", "Batch", params=_BATCH, version=False)
        },
        "/v1/batches/{batch_id}/cancel": {
            "post": _op("Cancel an OpenAI batch", "Batch", params=_BATCH, version=False)
        },
        "/v1/files": {
            "get": _op(
                "List files",
                "FileList",
                params=[
                    *after,
                    {"name": "order", "in": "query", "schema": {"enum": ["asc", "desc"]}},
                    {"name": "purpose", "in": "query", "schema": {"type": "string"}},
                ],
                version=False,
            )
        },
        "/v1/files/{file_id}": {
            "get": _op("Retrieve a file", "FileObject", params=_FILE, version=False),
            "delete": _op("Delete a file", "FileDeleted", params=_FILE, version=False),
        },
        "/v1/chat/completions": {
            "post": {
                "summary": "Create a chat completion (the OpenAI dialect)",
                "requestBody": {"required": True, **_json("ChatRequest")},
                "responses": {
                    "200": {
                        "description": "A chat.completion",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **_ERRORS,
                },
            }
        },
    }


def _paths() -> dict[str, Any]:
    return {**_message_paths(), **_admin_paths(), **_openai_paths()}


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
        "paths": _paths(),
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


routes = [
    Route("/openapi.json", openapi, methods=["GET"]),
    Route("/docs", docs, methods=["GET"]),
]
