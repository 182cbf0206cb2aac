"""The dashboard's sign-in rules when the key is refused and when the store is down."""

from __future__ import annotations

from typing import cast

from starlette.applications import Starlette
from starlette.testclient import TestClient

from batchyard.api.admission import Admission
from batchyard.auth.principal import Authenticator
from batchyard.auth.ratelimit import RateLimiter
from batchyard.auth.tenancy import Tenancy
from batchyard.clock import SystemClock
from batchyard.errors import StoreUnavailable
from batchyard.store.port import TenancyStore
from batchyard.store.records import RateLimits
from batchyard.ui import routes


class Tenancies:
    """A tenancy store that knows no key, or one whose database is down."""

    def __init__(self, down: bool) -> None:
        self.down = down

    async def key_by_digest(self, digest: str) -> None:
        if self.down:
            raise StoreUnavailable("the database is restarting")
        return None


def client(down: bool) -> TestClient:
    app = Starlette(routes=[e.route() for e in routes.endpoints])
    tenancy = Tenancy(cast(TenancyStore, Tenancies(down)), SystemClock())
    app.state.admission = Admission(
        Authenticator(tenancy, admin_key=None), RateLimiter(), RateLimits()
    )
    web = TestClient(app)
    web.cookies.set("batchyard_key", "sk-by-api01-some-key")
    return web


def test_a_refused_key_is_signed_out_with_the_reason() -> None:
    web = client(down=False)
    page = web.get("/ui")
    assert page.status_code == 401 and "not accepted: invalid x-api-key" in page.text
    assert 'batchyard_key=""' in page.headers["set-cookie"]  # the cookie is cleared
    assert web.get("/ui/fragments/batches").status_code == 401  # ui.js: to the sign-in form


def test_a_store_outage_is_an_error_page_not_a_sign_out() -> None:
    web = client(down=True)
    page = web.get("/ui")
    assert page.status_code == 503 and "the database is restarting" in page.text
    assert "set-cookie" not in page.headers
    fragment = web.get("/ui/fragments/batches")
    assert fragment.status_code == 503  # not 401: the live panels keep trying
