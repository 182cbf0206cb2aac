"""The store port and its implementations. Only this package knows SQL."""

from batchyard.store.base import (
    BatchRecord,
    ClaimedRequest,
    HousekeepingReport,
    NewBatch,
    Outcome,
    RecordReport,
    RequestState,
    Store,
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


def open_store(url: str, *, synchronous: str = "NORMAL") -> Store:
    """Open the store named by `url`: a SQLite file path or `sqlite:///path`."""
    from batchyard.store.sqlite import SQLiteStore

    if url.startswith(("postgresql://", "postgres://")):
        raise ValueError("PostgreSQL is not supported yet; use a SQLite file path")
    path = url.removeprefix("sqlite:///").removeprefix("sqlite://")
    return SQLiteStore(path, synchronous=synchronous)
