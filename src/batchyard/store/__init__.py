"""The store port and its implementations. Only this package knows SQL."""

from batchyard.store.layout import RequestState
from batchyard.store.port import Store
from batchyard.store.records import (
    BatchRecord,
    ClaimedRequest,
    HousekeepingReport,
    NewBatch,
    Outcome,
    RecordReport,
    UnknownCursor,
)

__all__ = [
    "BatchRecord",
    "ClaimedRequest",
    "HousekeepingReport",
    "NewBatch",
    "Outcome",
    "RecordReport",
    "RequestState",
    "Store",
    "UnknownCursor",
]


MEMORY_URL = "memory://"


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def open_store(url: str, *, synchronous: str = "NORMAL", pool_size: int = 10) -> Store:
    """The store named by `url`: `postgresql://…` (asyncpg), `memory://` (in this
    process's memory, for tests and trying things: nothing survives the process), else
    a SQLite file path (or `sqlite:///path`)."""
    if url == MEMORY_URL:
        from batchyard.store.memory import MemoryStore

        return MemoryStore()
    if is_postgres(url):
        from batchyard.store.postgres import PostgresStore

        return PostgresStore(url, synchronous=synchronous, pool_size=pool_size)
    from batchyard.store.sqlite import SQLiteStore

    path = url.removeprefix("sqlite:///").removeprefix("sqlite://")
    return SQLiteStore(path, synchronous=synchronous)
