"""Opening the PostgreSQL store waits for a server that is not up yet, then gives up clearly."""

from __future__ import annotations

import time

import pytest

from batchyard.errors import StoreUnavailable
from batchyard.store.postgres import PostgresStore, numbered
from tests.serverproc import free_port

pytestmark = pytest.mark.anyio


async def test_unreachable_server_is_retried_then_store_unavailable() -> None:
    store = PostgresStore(f"postgresql://nobody@127.0.0.1:{free_port()}/none")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="Cannot reach PostgreSQL"):
        await store.open(wait_seconds=1.0)
    assert time.monotonic() - started >= 0.5  # it did wait and retry


def test_placeholders_are_numbered() -> None:
    assert numbered("SELECT ? WHERE a = ? AND b IN (?)") == "SELECT $1 WHERE a = $2 AND b IN ($3)"
