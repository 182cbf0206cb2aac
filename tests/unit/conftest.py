from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from batchyard.store import MEMORY_URL, Store, open_store
from tests.databases import PG_URL, fresh_database


async def _opened(kind: str, tmp_path: Path) -> AsyncIterator[Store]:
    if kind == "postgres":
        if not PG_URL:
            pytest.skip("no test PostgreSQL (BATCHYARD_TEST_PG); `make test` starts one")
        s = open_store(fresh_database("unit"))
    elif kind == "memory":
        s = open_store(MEMORY_URL)
    else:
        s = open_store(str(tmp_path / "store.sqlite"))
    await s.open()
    yield s
    await s.close()


@pytest.fixture(params=["sqlite", "postgres", "memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Each store contract test runs on every store (PostgreSQL when the tests have one)."""
    async for s in _opened(request.param, tmp_path):
        yield s


@pytest.fixture(params=["sqlite", "postgres"])
async def sql_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A SQL store, for the tests that read its tables or files (not part of the port)."""
    async for s in _opened(request.param, tmp_path):
        yield s


@pytest.fixture
async def memory_store(tmp_path: Path) -> AsyncIterator[Store]:
    """The in-memory store alone (the worker and service tests that need no database)."""
    async for s in _opened("memory", tmp_path):
        yield s
