from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from batchyard.store import Store, open_store
from tests.databases import PG_URL, fresh_database


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Each store contract test runs on both stores (PostgreSQL when the tests have one)."""
    if request.param == "postgres":
        if not PG_URL:
            pytest.skip("no test PostgreSQL (BATCHYARD_TEST_PG); `make test` starts one")
        s = open_store(fresh_database("unit"))
    else:
        s = open_store(str(tmp_path / "store.sqlite"))
    await s.open()
    yield s
    await s.close()
