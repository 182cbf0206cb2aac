"""The ASGI application: routes, error mapping, and (by default) the worker in-process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount

from batchyard.api import openapi, state
from batchyard.api.admission import Admission
from batchyard.api.bodies import Bodies
from batchyard.api.context import RequestContext
from batchyard.api.endpoints import Endpoint, Table
from batchyard.api.errors import error_response
from batchyard.api.loopback import LoopbackGuard, loopback_hosts
from batchyard.api.routes import ENDPOINTS
from batchyard.auth.principal import Authenticator
from batchyard.auth.ratelimit import RateLimiter
from batchyard.clock import Clock, SystemClock
from batchyard.composition import build_services
from batchyard.config import Settings
from batchyard.metrics import Metrics
from batchyard.ui import routes as ui

log = logging.getLogger("batchyard.api")


async def _http_error(request: Request, exc: Exception) -> Response:
    return error_response(exc, request.state.request_id, request.state.dialect)


async def healthz(request: Request) -> Response:
    """The process answers."""
    return JSONResponse({"status": "ok"})


async def metrics(request: Request) -> Response:
    """Prometheus text format; the store-wide gauges are read now."""
    m: Metrics = request.app.state.metrics
    batches, requests = await state.health(request).open_counts()
    m.open_batches.set(batches)
    m.queue_depth.set(requests)
    m.batches_at_risk.set(len(await state.services(request).batches.eta.at_risk()))
    return Response(m.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


async def readyz(request: Request) -> Response:
    """The store answers too (a StoreUnavailable becomes a 503 in the error shape)."""
    await state.health(request).check()
    return JSONResponse({"status": "ready"})


def create_app(settings: Settings, clock: Clock | None = None) -> Starlette:
    clock = clock or SystemClock()
    built = build_services(settings, Metrics(), run_worker=settings.run_worker, clock=clock)
    admission = Admission(
        Authenticator(built.tenancy, admin_key=settings.admin_key, enabled=settings.auth),
        RateLimiter(),
        settings.rate_limits,
        None
        if settings.auth
        else LoopbackGuard(loopback_hosts(settings.host, settings.port, settings.public_base_url)),
    )
    worker = built.worker

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await built.open()
        task = asyncio.create_task(worker.run(), name="worker") if worker else None
        try:
            yield
        finally:
            if worker and task:
                worker.stop()
                with contextlib.suppress(Exception):
                    await task
            await built.close()

    table = Table(
        [
            Endpoint("GET", "/healthz", healthz, access="public"),
            Endpoint("GET", "/readyz", readyz, access="public"),
            Endpoint("GET", "/metrics", metrics, access="public"),
            *openapi.endpoints,
            *ui.endpoints,
            *ENDPOINTS,
        ]
    )
    served: list[BaseRoute] = [*table.routes()]
    prefix = (settings.path_prefix or "").rstrip("/")
    if prefix:  # the same API and dashboard under a path prefix, for proxies that keep it
        served.append(Mount(prefix, routes=table.routes()))
    app = Starlette(
        routes=served,
        middleware=[Middleware(RequestContext, prefix=prefix)],
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.services = built
    app.state.metrics = built.metrics  # the request middleware counts into it
    app.state.admission = admission
    app.state.table = table
    app.state.bodies = Bodies(settings.bodies)
    return app
