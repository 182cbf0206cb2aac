"""Workspaces, API keys and usage counters of the in-memory store."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeVar

from batchyard.store.memory_rows import DuplicateId, insert, page
from batchyard.store.records import (
    DEFAULT_WORKSPACE,
    ApiKeyRecord,
    RateLimits,
    UsageRow,
    WorkspaceRecord,
)

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Row = TypeVar("Row", bound="DataclassInstance")
UsageKey = tuple[int, str, str, str, str]
"""(bucket, workspace_id, api_key_id, model, service_tier), as the `usage` table's key."""


class MemoryTenancy:
    def __init__(self) -> None:
        # Insertion order is creation order (the SQL tables' `seq`).
        self._workspaces: dict[str, WorkspaceRecord] = {}
        self._keys: dict[str, ApiKeyRecord] = {}
        self._digests: dict[str, str] = {}
        self._usage: dict[UsageKey, list[int]] = {}
        # What the migrations write into a new database.
        default = WorkspaceRecord(DEFAULT_WORKSPACE, "Default", "#6C5BB9", float(int(time.time())))
        self._workspaces[default.id] = default

    # --- workspaces -------------------------------------------------------------

    async def create_workspace(self, workspace: WorkspaceRecord) -> WorkspaceRecord:
        insert(self._workspaces, workspace.id, workspace)
        return workspace

    async def get_workspace(self, workspace_id: str) -> WorkspaceRecord | None:
        return self._workspaces.get(workspace_id)

    async def workspace_by_name(self, name: str) -> WorkspaceRecord | None:
        spaces = self._workspaces.values()
        return next((w for w in spaces if w.name == name and w.archived_at is None), None)

    async def list_workspaces(
        self, limit: int, after_id: str | None, before_id: str | None, include_archived: bool
    ) -> tuple[list[WorkspaceRecord], bool]:
        rows = [w for w in self._workspaces.values() if include_archived or w.archived_at is None]
        return page(rows, lambda w: w.id, limit, after_id, before_id)

    async def update_workspace(
        self, workspace_id: str, name: str | None, limits: RateLimits | None
    ) -> WorkspaceRecord | None:
        return _update(self._workspaces, workspace_id, name=name, limits=limits)

    async def archive_workspace(self, workspace_id: str, now: float) -> WorkspaceRecord | None:
        found = self._workspaces.get(workspace_id)
        if found is not None and found.archived_at is None:
            self._workspaces[workspace_id] = dataclasses.replace(found, archived_at=now)
        for key in [k for k in self._keys.values() if k.workspace_id == workspace_id]:
            self._keys[key.id] = dataclasses.replace(key, status="archived")
        return self._workspaces.get(workspace_id)

    # --- API keys ---------------------------------------------------------------

    async def create_key(self, key: ApiKeyRecord, digest: str) -> ApiKeyRecord:
        if digest in self._digests:
            raise DuplicateId(digest)
        insert(self._keys, key.id, key)
        self._digests[digest] = key.id
        return key

    async def key_by_digest(
        self, digest: str
    ) -> tuple[ApiKeyRecord, WorkspaceRecord | None] | None:
        key_id = self._digests.get(digest)
        if key_id is None:
            return None
        key = self._keys[key_id]
        space = self._workspaces.get(key.workspace_id) if key.workspace_id is not None else None
        return key, space

    async def get_key(self, key_id: str) -> ApiKeyRecord | None:
        return self._keys.get(key_id)

    async def list_keys(
        self,
        limit: int,
        after_id: str | None,
        before_id: str | None,
        workspace_id: str | None,
        status: str | None,
    ) -> tuple[list[ApiKeyRecord], bool]:
        rows = [
            k
            for k in self._keys.values()
            if (workspace_id is None or k.workspace_id == workspace_id)
            and (status is None or k.status == status)
        ]
        return page(rows, lambda k: k.id, limit, after_id, before_id)

    async def update_key(
        self, key_id: str, name: str | None, status: str | None
    ) -> ApiKeyRecord | None:
        return _update(self._keys, key_id, name=name, status=status)

    async def count_keys(self) -> int:
        return len(self._keys)

    # --- usage ------------------------------------------------------------------

    def count(self, rows: Sequence[UsageRow]) -> None:
        """Add `rows` to the hourly counters (in the caller's step: no await)."""
        for r in rows:
            key = (r.bucket, r.workspace_id, r.api_key_id, r.model, r.service_tier)
            acc = self._usage.setdefault(key, [0] * 6)
            for i, n in enumerate(_counts(r)):
                acc[i] += n

    async def add_usage(self, rows: Sequence[UsageRow]) -> None:
        self.count(rows)

    async def usage(self, start: int, end: int) -> list[UsageRow]:
        return [
            UsageRow(*key, *acc)
            for key, acc in sorted(self._usage.items())
            if start <= key[0] < end
        ]


def _update(table: dict[str, Row], row_id: str, **changes: object) -> Row | None:
    """Change the fields of `changes` that are not None in the row `row_id`, if any."""
    found = table.get(row_id)
    if found is not None:
        found = dataclasses.replace(found, **{k: v for k, v in changes.items() if v is not None})
        table[row_id] = found
    return found


def _counts(r: UsageRow) -> tuple[int, int, int, int, int, int]:
    return (
        r.requests,
        r.input_tokens,
        r.output_tokens,
        r.cache_read_input_tokens,
        r.cache_creation_5m_input_tokens,
        r.cache_creation_1h_input_tokens,
    )
