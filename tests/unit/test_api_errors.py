"""Every failure leaves the API in the Anthropic error shape, with a request-id."""

from __future__ import annotations

import json
from typing import cast

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.testclient import TestClient

from batchyard.api.admission import Admission
from batchyard.api.context import RequestContext
from batchyard.api.endpoints import Endpoint, Table
from batchyard.api.errors import error_response
from batchyard.auth.principal import Authenticator
from batchyard.auth.ratelimit import RateLimiter
from batchyard.auth.tenancy import Tenancy
from batchyard.clock import SystemClock
from batchyard.errors import (
    ERROR_TYPES,
    BatchyardError,
    EngineError,
    StoreUnavailable,
    http_status_of,
    type_of_status,
)
from batchyard.store.port import TenancyStore
from batchyard.store.records import DEFAULT_WORKSPACE, RateLimits, WorkspaceRecord

ADMIN = "sk-by-admin01-unit-tests-0123456789"


class OneWorkspace:
    """Just enough of a tenancy store for admission: the default workspace, no stored keys."""

    async def key_by_digest(self, digest: str) -> None:
        return None

    async def get_workspace(self, workspace_id: str) -> WorkspaceRecord | None:
        if workspace_id != DEFAULT_WORKSPACE:
            return None
        return WorkspaceRecord(DEFAULT_WORKSPACE, "Default", "#000000", 0.0)


async def boom(request: Request) -> Response:
    raise RuntimeError("secret internals")


async def store_down(request: Request) -> Response:
    raise StoreUnavailable("The store is unavailable (disk I/O error); try again")


def client() -> TestClient:
    table = Table([Endpoint("GET", "/v1/boom", boom), Endpoint("GET", "/v1/store", store_down)])
    app = Starlette(routes=table.routes(), middleware=[Middleware(RequestContext)])
    app.state.table = table
    tenancy = Tenancy(cast(TenancyStore, OneWorkspace()), SystemClock())
    app.state.admission = Admission(
        Authenticator(tenancy, admin_key=ADMIN), RateLimiter(), RateLimits()
    )
    return TestClient(app, raise_server_exceptions=False)


def test_unexpected_exception_is_a_500_without_traceback() -> None:
    r = client().get("/v1/boom", headers={"x-api-key": ADMIN})
    assert r.status_code == 500
    body = r.json()
    assert body == {
        "type": "error",
        "error": {"type": "api_error", "message": "Internal server error"},
        "request_id": r.headers["request-id"],
    }
    assert "secret" not in r.text and "Traceback" not in r.text


def test_store_failure_is_a_503_the_sdk_retries() -> None:
    r = client().get("/v1/store", headers={"authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 503
    assert r.json()["error"]["type"] == "api_error"
    assert "try again" in r.json()["error"]["message"]


def test_missing_key_is_checked_before_the_route() -> None:
    r = client().get("/v1/boom")
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    r = client().get("/v1/boom", headers={"authorization": "Basic abc"})
    assert r.status_code == 401
    r = client().get("/v1/boom", headers={"x-api-key": "not-a-key"})
    assert r.status_code == 401 and r.json()["error"]["message"] == "invalid x-api-key"


def test_one_table_ties_error_types_statuses_and_openai_codes() -> None:
    for error_type, kind in ERROR_TYPES.items():
        assert http_status_of(error_type) == kind.status
        assert type_of_status(kind.status) == error_type
    assert type_of_status(422) == "invalid_request_error" and type_of_status(503) == "api_error"
    assert http_status_of("some_new_error") == 500


def test_an_engine_error_is_answered_like_any_other_error() -> None:
    exc = EngineError("rate_limit_error", "slow down", retryable=True, retry_after=3.2)
    assert isinstance(exc, BatchyardError) and exc.status_code == 429
    response = error_response(exc, "req_1")
    assert response.status_code == 429 and response.headers["retry-after"] == "3"
    assert json.loads(bytes(response.body))["error"] == {
        "type": "rate_limit_error",
        "message": "slow down",
    }
    openai = json.loads(bytes(error_response(exc, "req_1", "openai").body))["error"]
    assert openai["code"] == "rate_limit_exceeded" and openai["type"] == "rate_limit_error"
