"""Typed access to what the application and the request context hold."""

from __future__ import annotations

from starlette.requests import Request

from batchyard.batches import BatchService
from batchyard.engines.router import EngineRouter


def router(request: Request) -> EngineRouter:
    value: EngineRouter = request.app.state.router
    return value


def batch_service(request: Request) -> BatchService:
    value: BatchService = request.app.state.batches
    return value


def workspace(request: Request) -> str:
    """The caller's workspace (set by the RequestContext middleware)."""
    value: str = request.state.workspace_id
    return value
