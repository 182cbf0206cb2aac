"""The Admin API under `/v1/organizations/` (admin keys only; admission checks that).

Workspaces, API keys, the usage report and the cost report, in the hosted API's paths and shapes.
Users, invites, service accounts and the rest of the hosted Admin API are not
part of batchyard: they answer 404 saying so.
"""

from __future__ import annotations

from typing import Any, TypedDict, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from batchyard.api import state
from batchyard.api.endpoints import PAGE, Doc, Endpoint, Handler, path_param
from batchyard.api.requests import page_limit, read_body
from batchyard.api.responses import json_response
from batchyard.clock import to_datetime, to_datetime_or_none
from batchyard.errors import InvalidRequest, NotFound
from batchyard.services.costs import CostQuery
from batchyard.services.usage import UsageQuery
from batchyard.store.records import ApiKeyRecord, RateLimits, WorkspaceRecord
from batchyard.wire import json_limits
from batchyard.wire.admin import (
    ApiKey,
    ApiKeyCreateIn,
    ApiKeyPage,
    ApiKeyUpdateIn,
    CreatedApiKey,
    OrganizationInfo,
    OrganizationScope,
    Workspace,
    WorkspaceCreateIn,
    WorkspacePage,
    WorkspaceRateLimits,
    WorkspaceScope,
    WorkspaceUpdateIn,
)
from batchyard.wire.errors import InvalidParams, format_validation_error

MAX_ADMIN_BODY = 1024 * 1024
T = TypeVar("T")
P = TypeVar("P", WorkspacePage, ApiKeyPage)


async def _body(request: Request, kind: type[T]) -> T:
    body = await read_body(request, MAX_ADMIN_BODY)
    try:
        return json_limits.decode(msgspec.json.Decoder(kind), body or b"{}")
    except InvalidParams as exc:
        raise InvalidRequest(str(exc)) from None
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise InvalidRequest(format_validation_error(exc)) from None


def _flag(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if raw.lower() not in ("true", "false", "1", "0"):
        raise InvalidRequest(f"{name}: must be true or false")
    return raw.lower() in ("true", "1")


def _list(request: Request, name: str) -> list[str]:
    """A list parameter, sent as `name[]=a&name[]=b` (the SDKs) or `name=a&name=b`."""
    q = request.query_params
    return [*q.getlist(f"{name}[]"), *q.getlist(name)]


def _page(kind: type[P], items: list[Any], has_more: bool) -> P:
    return kind(
        data=items,
        has_more=has_more,
        first_id=items[0].id if items else None,
        last_id=items[-1].id if items else None,
    )


def workspace_to_wire(w: WorkspaceRecord) -> Workspace:
    return Workspace(
        id=w.id,
        name=w.name,
        created_at=to_datetime(w.created_at),
        archived_at=to_datetime_or_none(w.archived_at),
        display_color=w.display_color,
        compartment_id=f"cmpt_{w.id.removeprefix('wrkspc_')}",
        rate_limits=WorkspaceRateLimits(
            w.limits.requests_per_minute,
            w.limits.batch_requests_per_minute,
            w.limits.batch_queued_requests,
        ),
    )


def key_to_wire(k: ApiKeyRecord, status: str) -> ApiKey:
    scope: WorkspaceScope | OrganizationScope = (
        WorkspaceScope(k.workspace_id) if k.workspace_id else OrganizationScope()
    )
    return ApiKey(
        id=k.id,
        name=k.name,
        created_at=to_datetime(k.created_at),
        expires_at=to_datetime_or_none(k.expires_at),
        partial_key_hint=k.hint,
        scope=scope,
        status=status,
        workspace_id=k.workspace_id,
    )


def _limits(wire: WorkspaceRateLimits | None) -> RateLimits | None:
    if wire is None:
        return None
    return RateLimits(
        wire.requests_per_minute, wire.batch_requests_per_minute, wire.batch_queued_requests
    )


# --- organization -----------------------------------------------------------------


async def me(request: Request) -> Response:
    return json_response(OrganizationInfo(id="org_batchyard", name="batchyard"))


# --- workspaces ---------------------------------------------------------------------


async def list_workspaces(request: Request) -> Response:
    q = request.query_params
    page, has_more = await state.tenancy(request).list_workspaces(
        page_limit(request),
        q.get("after_id"),
        q.get("before_id"),
        include_archived=bool(_flag(request, "include_archived")),
        include_default=bool(_flag(request, "include_default")),
    )
    return json_response(_page(WorkspacePage, [workspace_to_wire(w) for w in page], has_more))


async def create_workspace(request: Request) -> Response:
    body = await _body(request, WorkspaceCreateIn)
    record = await state.tenancy(request).create_workspace(
        body.name, body.display_color, _limits(body.rate_limits)
    )
    return json_response(workspace_to_wire(record))


async def retrieve_workspace(request: Request) -> Response:
    record = await state.tenancy(request).workspace(request.path_params["workspace_id"])
    return json_response(workspace_to_wire(record))


async def update_workspace(request: Request) -> Response:
    body = await _body(request, WorkspaceUpdateIn)
    record = await state.tenancy(request).update_workspace(
        request.path_params["workspace_id"], body.name, _limits(body.rate_limits)
    )
    return json_response(workspace_to_wire(record))


async def archive_workspace(request: Request) -> Response:
    record = await state.tenancy(request).archive_workspace(request.path_params["workspace_id"])
    return json_response(workspace_to_wire(record))


# --- API keys -----------------------------------------------------------------------


async def list_keys(request: Request) -> Response:
    q = request.query_params
    tenancy = state.tenancy(request)
    status = q.get("status") or None
    page, has_more = await tenancy.list_keys(
        page_limit(request),
        q.get("after_id"),
        q.get("before_id"),
        workspace_id=q.get("workspace_id") or None,
        status="active" if status == "expired" else status,
    )
    keys = [key_to_wire(k, tenancy.status_of(k)) for k in page]
    if status is not None:
        keys = [k for k in keys if k.status == status]
    return json_response(_page(ApiKeyPage, keys, has_more))


async def create_key(request: Request) -> Response:
    body = await _body(request, ApiKeyCreateIn)
    tenancy = state.tenancy(request)
    record, secret = await tenancy.create_key(
        body.name,
        workspace_id=body.workspace_id,
        admin=body.admin,
        expires_at=body.expires_at.timestamp() if body.expires_at else None,
    )
    wire = key_to_wire(record, tenancy.status_of(record))
    return json_response(CreatedApiKey(**msgspec.structs.asdict(wire), key=secret))


async def retrieve_key(request: Request) -> Response:
    tenancy = state.tenancy(request)
    record = await tenancy.key(request.path_params["api_key_id"])
    return json_response(key_to_wire(record, tenancy.status_of(record)))


async def update_key(request: Request) -> Response:
    body = await _body(request, ApiKeyUpdateIn)
    tenancy = state.tenancy(request)
    record = await tenancy.update_key(request.path_params["api_key_id"], body.name, body.status)
    return json_response(key_to_wire(record, tenancy.status_of(record)))


# --- usage --------------------------------------------------------------------------


class _ReportParams(TypedDict):
    starting_at: str
    ending_at: str | None
    bucket_width: str
    group_by: list[str]
    limit: int | None
    page: str | None


def _report_params(request: Request) -> _ReportParams:
    """The parameters the usage and cost reports share (their window and grouping)."""
    q = request.query_params
    starting_at = q.get("starting_at")
    if not starting_at:
        raise InvalidRequest("starting_at: required (an RFC 3339 date-time)")
    raw_limit = q.get("limit")
    if raw_limit is not None and not raw_limit.isdigit():
        raise InvalidRequest("limit: must be an integer")
    return _ReportParams(
        starting_at=starting_at,
        ending_at=q.get("ending_at"),
        bucket_width=q.get("bucket_width", "1d"),
        group_by=_list(request, "group_by"),
        limit=int(raw_limit) if raw_limit is not None else None,
        page=q.get("page"),
    )


async def messages_usage_report(request: Request) -> Response:
    query = UsageQuery(
        **_report_params(request),
        filters={
            name: _list(request, name)
            for name in ("workspace_ids", "api_key_ids", "models", "service_tiers")
        },
    )
    return json_response(await state.usage(request).report(query))


async def cost_report(request: Request) -> Response:
    query = CostQuery(**_report_params(request))
    return json_response(await state.costs(request).report(query))


async def not_offered(request: Request) -> Response:
    raise NotFound(
        f"{request.url.path} is not part of batchyard's Admin API: it has workspaces, API keys"
        " the usage and cost reports; users, invites, service accounts and the rest are not offered"
    )


_WORKSPACE = path_param("workspace_id")
_KEY = path_param("api_key_id")
_USAGE_QUERY: tuple[dict[str, Any], ...] = (
    {"name": "starting_at", "in": "query", "required": True, "schema": {"type": "string"}},
    {"name": "ending_at", "in": "query", "schema": {"type": "string"}},
    {"name": "bucket_width", "in": "query", "schema": {"enum": ["1h", "1d"]}},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
    {"name": "page", "in": "query", "schema": {"type": "string"}},
)
_ORG = "/v1/organizations"


def _admin(method: str, path: str, handler: Handler, doc: Doc | None = None) -> Endpoint:
    return Endpoint(method, _ORG + path, handler, access="admin", version=True, doc=doc)


endpoints = [
    _admin("GET", "/me", me, Doc("The organization", "OrganizationInfo")),
    _admin("GET", "/workspaces", list_workspaces, Doc("List workspaces", "WorkspacePage", params=PAGE)),
    _admin("POST", "/workspaces", create_workspace,
           Doc("Create a workspace", "Workspace", body="WorkspaceCreateIn")),
    _admin("GET", "/workspaces/{workspace_id}", retrieve_workspace,
           Doc("Retrieve a workspace", "Workspace", params=_WORKSPACE)),
    _admin("POST", "/workspaces/{workspace_id}", update_workspace,
           Doc("Update a workspace", "Workspace", body="WorkspaceUpdateIn", params=_WORKSPACE)),
    _admin("POST", "/workspaces/{workspace_id}/archive", archive_workspace,
           Doc("Archive a workspace and its keys", "Workspace", params=_WORKSPACE)),
    _admin("GET", "/api_keys", list_keys, Doc("List API keys", "ApiKeyPage", params=PAGE)),
    _admin("POST", "/api_keys", create_key,
           Doc("Create an API key (batchyard)", "CreatedApiKey", body="ApiKeyCreateIn")),
    _admin("GET", "/api_keys/{api_key_id}", retrieve_key,
           Doc("Retrieve an API key", "ApiKey", params=_KEY)),
    _admin("POST", "/api_keys/{api_key_id}", update_key,
           Doc("Update an API key", "ApiKey", body="ApiKeyUpdateIn", params=_KEY)),
    _admin("GET", "/usage_report/messages", messages_usage_report,
           Doc("Usage report", "UsageReport", params=_USAGE_QUERY)),
    _admin("GET", "/cost_report", cost_report),
    *(_admin(m, "/{rest:path}", not_offered) for m in ("GET", "POST", "PUT", "PATCH", "DELETE")),
]  # fmt: skip
