"""Workspace and API key use cases, shared by the Admin API and `batchyard keys|workspaces`."""

from __future__ import annotations

import logging

from batchyard import ids
from batchyard.auth import keys
from batchyard.clock import Clock
from batchyard.errors import InvalidRequest, NotFound
from batchyard.store.port import TenancyStore
from batchyard.store.records import (
    DEFAULT_WORKSPACE,
    ApiKeyRecord,
    RateLimits,
    UnknownCursor,
    WorkspaceRecord,
)

audit = logging.getLogger("batchyard.audit")
"""Every change to workspaces and keys, one line each (never a secret)."""

_COLORS = ("#6C5BB9", "#C2410C", "#0F766E", "#1D4ED8", "#B91C1C", "#4D7C0F", "#A21CAF")


def cursor_error(after_id: str | None, before_id: str | None, exc: UnknownCursor) -> InvalidRequest:
    which = "before_id" if before_id is not None else "after_id"
    return InvalidRequest(f"{which}: no object with id {exc.args[0]!r}")


class Tenancy:
    def __init__(self, store: TenancyStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    # --- workspaces -------------------------------------------------------------

    async def create_workspace(
        self, name: str, display_color: str | None = None, limits: RateLimits | None = None
    ) -> WorkspaceRecord:
        wid = ids.workspace_id()
        color = display_color or _COLORS[sum(wid.encode()) % len(_COLORS)]
        record = await self.store.create_workspace(
            WorkspaceRecord(wid, name, color, self.clock.now(), None, limits or RateLimits())
        )
        audit.info("workspace %s created (name %r, limits %s)", wid, name, record.limits)
        return record

    async def workspace(self, workspace_id: str) -> WorkspaceRecord:
        record = await self.store.get_workspace(workspace_id)
        if record is None:
            raise NotFound(f"workspace {workspace_id!r} not found")
        return record

    async def find_workspace(self, id_or_name: str) -> WorkspaceRecord | None:
        """By id, else by name (the CLI takes either)."""
        return await self.store.get_workspace(id_or_name) or await self.store.workspace_by_name(
            id_or_name
        )

    async def list_workspaces(
        self,
        limit: int,
        after_id: str | None,
        before_id: str | None,
        *,
        include_archived: bool = False,
        include_default: bool = True,
    ) -> tuple[list[WorkspaceRecord], bool]:
        try:
            page, has_more = await self.store.list_workspaces(
                limit, after_id, before_id, include_archived
            )
        except UnknownCursor as exc:
            raise cursor_error(after_id, before_id, exc) from None
        if not include_default:
            page = [w for w in page if w.id != DEFAULT_WORKSPACE]
        return page, has_more

    async def update_workspace(
        self, workspace_id: str, name: str | None, limits: RateLimits | None
    ) -> WorkspaceRecord:
        await self.workspace(workspace_id)
        record = await self.store.update_workspace(workspace_id, name, limits)
        assert record is not None
        audit.info("workspace %s updated (name %r, limits %s)", workspace_id, name, limits)
        return record

    async def archive_workspace(self, workspace_id: str) -> WorkspaceRecord:
        await self.workspace(workspace_id)
        if workspace_id == DEFAULT_WORKSPACE:
            raise InvalidRequest("The default workspace cannot be archived")
        record = await self.store.archive_workspace(workspace_id, self.clock.now())
        assert record is not None
        audit.info("workspace %s archived, and its keys with it", workspace_id)
        return record

    # --- API keys ---------------------------------------------------------------

    async def create_key(
        self,
        name: str,
        *,
        workspace_id: str | None = None,
        admin: bool = False,
        expires_at: float | None = None,
    ) -> tuple[ApiKeyRecord, str]:
        """A new key and its secret (returned this once, stored only as a digest)."""
        if admin == (workspace_id is not None):
            raise InvalidRequest(
                "Give workspace_id for a workspace key, or admin: true for an Admin API key"
            )
        if workspace_id is not None:
            workspace = await self.workspace(workspace_id)
            if workspace.archived_at is not None:
                raise InvalidRequest(f"workspace {workspace_id!r} is archived")
        now = self.clock.now()
        if expires_at is not None and expires_at <= now:
            raise InvalidRequest("expires_at: must be in the future")
        secret = keys.generate("admin" if admin else "api")
        record = ApiKeyRecord(
            id=ids.api_key_id(),
            kind="admin" if admin else "api",
            workspace_id=workspace_id,
            name=name,
            hint=keys.hint(secret),
            status="active",
            created_at=now,
            expires_at=expires_at,
        )
        stored = await self.store.create_key(record, keys.digest(secret))
        audit.info(
            "%s key %s created (name %r, workspace %s, hint %s)",
            record.kind,
            record.id,
            name,
            workspace_id or "-",
            record.hint,
        )
        return stored, secret

    async def key(self, key_id: str) -> ApiKeyRecord:
        record = await self.store.get_key(key_id)
        if record is None:
            raise NotFound(f"api_key {key_id!r} not found")
        return record

    async def list_keys(
        self,
        limit: int,
        after_id: str | None,
        before_id: str | None,
        *,
        workspace_id: str | None = None,
        status: str | None = None,
    ) -> tuple[list[ApiKeyRecord], bool]:
        try:
            return await self.store.list_keys(limit, after_id, before_id, workspace_id, status)
        except UnknownCursor as exc:
            raise cursor_error(after_id, before_id, exc) from None

    async def update_key(self, key_id: str, name: str | None, status: str | None) -> ApiKeyRecord:
        current = await self.key(key_id)
        if current.status == "archived" and status not in (None, "archived"):
            raise InvalidRequest(f"api_key {key_id!r} is archived; archived keys stay archived")
        record = await self.store.update_key(key_id, name, status)
        assert record is not None
        audit.info("key %s updated (name %r, status %s)", key_id, name, status)
        return record

    def status_of(self, key: ApiKeyRecord) -> str:
        """The stored status, or `expired` once `expires_at` has passed."""
        expires_at = key.expires_at
        if key.status == "active" and expires_at is not None and expires_at <= self.clock.now():
            return "expired"
        return key.status
