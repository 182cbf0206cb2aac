"""Typed access to what the application and the request context hold."""

from __future__ import annotations

from starlette.requests import Request

from batchyard.api.admission import Admitted
from batchyard.auth.principal import Principal
from batchyard.auth.tenancy import Tenancy
from batchyard.batches import BatchService
from batchyard.engines.router import EngineRouter
from batchyard.store.records import WorkspaceRecord


def router(request: Request) -> EngineRouter:
    value: EngineRouter = request.app.state.router
    return value


def batch_service(request: Request) -> BatchService:
    value: BatchService = request.app.state.batches
    return value


def tenancy(request: Request) -> Tenancy:
    value: Tenancy = request.app.state.tenancy
    return value


def admitted(request: Request) -> Admitted:
    """What the RequestContext middleware admitted this request as."""
    value: Admitted = request.state.admitted
    return value


def principal(request: Request) -> Principal:
    value = admitted(request).principal
    assert value is not None, "route is not behind admission"
    return value


def workspace_record(request: Request) -> WorkspaceRecord:
    value = admitted(request).workspace
    assert value is not None, "route acts in no workspace"
    return value


def workspace(request: Request) -> str:
    """The id of the workspace this call acts in."""
    return workspace_record(request).id
