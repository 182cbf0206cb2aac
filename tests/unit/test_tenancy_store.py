"""Workspaces, keys, usage and workspace-fair claims, on every store."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import cast

import pytest

from batchyard.auth import keys
from batchyard.auth.tenancy import Tenancy
from batchyard.clock import ManualClock
from batchyard.errors import InvalidRequest
from batchyard.store.layout import RequestState
from batchyard.store.port import Store
from batchyard.store.records import (
    DEFAULT_WORKSPACE,
    ApiKeyRecord,
    NewBatch,
    Outcome,
    QueueFull,
    TokenUsage,
    UnknownCursor,
    WorkspaceRecord,
)
from batchyard.store.sql_runner import SqlRunner

pytestmark = pytest.mark.anyio
DAY = 86400.0


def batch(clock: ManualClock, name: str, workspace: str, api_key_id: str = "") -> NewBatch:
    now = clock.now()
    return NewBatch(f"msgbatch_{name}", workspace, now, now + DAY, now + 29 * DAY, api_key_id)


async def fill(store: Store, clock: ManualClock, name: str, workspace: str, n: int) -> None:
    await store.create_batch(
        batch(clock, name, workspace), [f"r{i}" for i in range(n)], [b"{}"] * n
    )


async def test_claims_are_fair_across_workspaces_not_batches(store: Store) -> None:
    """Twenty batches in one workspace do not get twenty times the share of another's one."""
    clock = ManualClock()
    for i in range(20):
        await fill(store, clock, f"a{i}", "ws_a", 50)
    await fill(store, clock, "b", "ws_b", 50)
    owner = {}
    for record in [await store.get_batch("ws_a", f"msgbatch_a{i}") for i in range(20)]:
        assert record is not None
        owner[record.seq] = "ws_a"
    b = await store.get_batch("ws_b", "msgbatch_b")
    assert b is not None
    owner[b.seq] = "ws_b"
    for _ in range(5):
        claimed = await store.claim_requests("w", clock.now(), 60, 8)
        assert len(claimed) == 8
        assert Counter(owner[c.batch_seq] for c in claimed) == {"ws_a": 4, "ws_b": 4}
    # When one workspace runs dry, the other gets the whole claim.
    claimed = await store.claim_requests("w", clock.now(), 60, 100)
    by_space = Counter(owner[c.batch_seq] for c in claimed)
    assert by_space["ws_b"] == 30 and by_space["ws_a"] == 70


async def test_queued_limit_counts_unfinished_requests_of_the_workspace(
    store: Store,
) -> None:
    clock = ManualClock()
    await store.create_batch(batch(clock, "one", "ws"), ["a", "b", "c"], [b"{}"] * 3, 5)
    with pytest.raises(QueueFull) as full:
        await store.create_batch(batch(clock, "two", "ws"), ["a", "b", "c"], [b"{}"] * 3, 5)
    assert (full.value.limit, full.value.queued) == (5, 3)
    assert await store.get_batch("ws", "msgbatch_two") is None
    # Another workspace has its own queue.
    await store.create_batch(batch(clock, "three", "other"), ["a", "b", "c"], [b"{}"] * 3, 5)
    # Finished requests no longer count.
    claimed = await store.claim_requests("w", clock.now(), 60, 10)
    mine = [c for c in claimed if c.custom_id in ("a", "b") and c.batch_seq == 1]
    await store.record_outcomes(
        "w", [Outcome(c.key, c.attempts, RequestState.SUCCEEDED, b"{}") for c in mine], 0
    )
    await store.create_batch(batch(clock, "four", "ws"), ["a", "b", "c"], [b"{}"] * 3, 5)


async def test_batch_usage_is_counted_once_with_the_result(store: Store) -> None:
    clock = ManualClock(start=1_800_000_000.0)
    await store.create_batch(batch(clock, "u", "ws", "apikey_x"), ["a", "b"], [b"{}"] * 2)
    claimed = await store.claim_requests("w", clock.now(), 60, 10)
    outcomes = [
        Outcome(c.key, c.attempts, RequestState.SUCCEEDED, b"{}", usage=TokenUsage("m", 10, 3))
        for c in claimed
    ]
    await store.record_outcomes("w", outcomes, clock.now())
    # A replay of the same outcomes (e.g. a worker retrying a flush) is stale: not counted.
    report = await store.record_outcomes("w", outcomes, clock.now())
    assert report.stale == 2
    rows = await store.tenancy.usage(0, 2_000_000_000)
    assert [(r.workspace_id, r.api_key_id, r.model, r.service_tier) for r in rows] == [
        ("ws", "apikey_x", "m", "batch")
    ]
    assert (rows[0].requests, rows[0].input_tokens, rows[0].output_tokens) == (2, 20, 6)
    assert rows[0].bucket == 1_800_000_000 // 3600 * 3600


def database_bytes(folder: Path) -> bytes:
    """The database file and its WAL, as they lie on disk."""
    return b"".join(p.read_bytes() for p in folder.glob("store.sqlite*"))


async def new_key(store: Store) -> tuple[Tenancy, WorkspaceRecord, ApiKeyRecord, str]:
    """A workspace's new key: (tenancy, workspace, key record, secret)."""
    tenancy = Tenancy(store.tenancy, ManualClock())
    workspace = await tenancy.create_workspace("team-a")
    record, secret = await tenancy.create_key("ci", workspace_id=workspace.id)
    assert secret.startswith(keys.API_PREFIX) and record.hint.startswith("sk-by-api01-")
    assert secret not in record.hint and record.hint.endswith(secret[-4:])
    return tenancy, workspace, record, secret


async def test_keys_are_found_by_digest_and_revocation_is_immediate(store: Store) -> None:
    tenancy, workspace, record, secret = await new_key(store)
    found = await store.tenancy.key_by_digest(keys.digest(secret))
    assert found == (record, workspace)
    await tenancy.update_key(record.id, None, "inactive")
    again = await store.tenancy.key_by_digest(keys.digest(secret))
    assert again is not None and again[0].status == "inactive"
    admin, admin_secret = await tenancy.create_key("ops", admin=True)
    assert await store.tenancy.key_by_digest(keys.digest(admin_secret)) == (admin, None)


async def test_keys_are_stored_as_digests(sql_store: Store, tmp_path: Path) -> None:
    """Stored as a digest (checked in the rows, and in the SQLite file's bytes)."""
    store = sql_store
    _, workspace, record, secret = await new_key(store)
    rows = await cast(SqlRunner, store).fetchall("SELECT * FROM api_keys")
    assert secret not in repr(rows) and keys.digest(secret) in repr(rows)
    if (tmp_path / "store.sqlite").exists():
        await store.close()
        raw = database_bytes(tmp_path)
        assert secret.encode() not in raw and keys.digest(secret).encode() in raw
        await store.open()
    assert await store.tenancy.key_by_digest(keys.digest(secret)) == (record, workspace)


async def test_archiving_a_workspace_archives_its_keys(store: Store) -> None:
    clock = ManualClock()
    tenancy = Tenancy(store.tenancy, clock)
    workspace = await tenancy.create_workspace("gone")
    record, _ = await tenancy.create_key("k", workspace_id=workspace.id)
    archived = await tenancy.archive_workspace(workspace.id)
    assert archived.archived_at == clock.now()
    assert (await tenancy.key(record.id)).status == "archived"
    with pytest.raises(InvalidRequest, match="archived keys stay archived"):
        await tenancy.update_key(record.id, None, "active")
    with pytest.raises(InvalidRequest, match="is archived"):
        await tenancy.create_key("k2", workspace_id=workspace.id)
    with pytest.raises(InvalidRequest, match="default workspace"):
        await tenancy.archive_workspace(DEFAULT_WORKSPACE)


async def test_expired_keys(store: Store) -> None:
    clock = ManualClock()
    tenancy = Tenancy(store.tenancy, clock)
    record, _ = await tenancy.create_key("temp", admin=True, expires_at=clock.now() + 60)
    assert tenancy.status_of(record) == "active"
    clock.advance(61)
    assert tenancy.status_of(record) == "expired"


async def test_workspace_pages(store: Store) -> None:
    tenancy = Tenancy(store.tenancy, ManualClock())
    made = [await tenancy.create_workspace(f"w{i}") for i in range(5)]
    page, more = await tenancy.list_workspaces(2, None, None, include_default=False)
    assert [w.name for w in page] == ["w4", "w3"] and more
    page, more = await tenancy.list_workspaces(10, page[-1].id, None)
    assert [w.name for w in page] == ["w2", "w1", "w0", "Default"] and not more
    page, _ = await tenancy.list_workspaces(2, None, made[0].id)
    assert [w.name for w in page] == ["w2", "w1"]
    assert (await tenancy.find_workspace("w3")) == made[3]
    assert (await tenancy.find_workspace(made[3].id)) == made[3]


async def test_text_the_database_cannot_hold_is_an_invalid_request(store: Store) -> None:
    """PostgreSQL text cannot hold NUL (JSON strings can): a 400, never a 500."""
    tenancy = Tenancy(store.tenancy, ManualClock())
    try:
        found = await tenancy.find_workspace("bad\x00name")
    except InvalidRequest as exc:
        assert "cannot be stored" in str(exc)
    else:
        assert found is None  # SQLite stores and compares it like any character
    # A cursor with a NUL: unknown (SQLite) or refused (PostgreSQL), never a crash.
    with pytest.raises((InvalidRequest, UnknownCursor)):
        await store.list_batches("ws", 10, "msgbatch_\x00", None)
