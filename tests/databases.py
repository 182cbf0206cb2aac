"""The tests' databases: SQLite files, or PostgreSQL databases on the server that
`BATCHYARD_TEST_PG` names (scripts/postgres.sh starts one; `make test` does it, and
runs the integration suite a second time with BATCHYARD_TEST_STORE=postgres)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

PG_URL = os.environ.get("BATCHYARD_TEST_PG", "")
ON_POSTGRES = os.environ.get("BATCHYARD_TEST_STORE") == "postgres"
"""Run the integration suite's servers on PostgreSQL instead of SQLite files."""
if ON_POSTGRES and not PG_URL:
    raise RuntimeError("BATCHYARD_TEST_STORE=postgres needs BATCHYARD_TEST_PG (a server URL)")


T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine in a thread and loop of its own (callers may be inside one)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def fresh_database(prefix: str = "t") -> str:
    """Create an empty database on the test server; return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"

    async def create() -> None:
        conn = await asyncpg.connect(PG_URL)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    _run(create())
    return PG_URL.rsplit("/", 1)[0] + "/" + name


def new_database(folder: Path, name: str) -> str:
    """A new, empty database for one server: a PostgreSQL database when the suite runs
    on PostgreSQL, else a SQLite file in `folder`."""
    return fresh_database(name) if ON_POSTGRES else str(folder / f"{name}.sqlite")


def query(database: str | Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    """Rows of `sql` (with `?` placeholders), read straight from a test database."""
    url = str(database)
    if not url.startswith("postgresql://"):
        with sqlite3.connect(url) as conn:
            return conn.execute(sql, params).fetchall()

    from batchyard.store.postgres import numbered

    async def fetch() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(url)
        try:
            return [tuple(r) for r in await conn.fetch(numbered(sql), *params)]
        finally:
            await conn.close()

    return _run(fetch())


class Cluster:
    """A PostgreSQL cluster of a test's own (scripts/postgres.sh), for tests that
    restart it or change its settings: the shared test server stays untouched."""

    def __init__(self, folder: Path, port: int) -> None:
        import subprocess

        self.folder = folder
        script = Path(__file__).resolve().parent.parent / "scripts" / "postgres.sh"
        self.url = subprocess.run(
            [str(script), str(folder), str(port), "off"], check=True, capture_output=True, text=True
        ).stdout.strip()

    def pg_ctl(self, *args: str) -> None:
        import glob
        import os
        import subprocess

        [bindir] = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1:]
        run_as = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
        # The server a restart starts must not hold our pipes open: it logs to a file.
        subprocess.run(
            [*run_as, f"{bindir}/pg_ctl", "-D", str(self.folder / "data"), "-w", "-t", "60",
             "-l", str(self.folder / "server.log"), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def sql(self, statement: str) -> None:
        async def run() -> None:
            conn = await asyncpg.connect(self.url)
            try:
                await conn.execute(statement)
            finally:
                await conn.close()

        _run(run())

    def database(self, prefix: str) -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.sql(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + "/" + name

    def stop(self) -> None:
        self.pg_ctl("stop", "-m", "immediate")
