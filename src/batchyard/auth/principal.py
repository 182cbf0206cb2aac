"""From a key to a principal, and from a principal (and `anthropic-workspace-id`) to a workspace."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from batchyard.auth import keys
from batchyard.auth.tenancy import Tenancy
from batchyard.errors import AuthenticationFailed, NotFound, PermissionDenied
from batchyard.store.records import DEFAULT_WORKSPACE, WorkspaceRecord

ENV_ADMIN_KEY_ID = "apikey_env_admin"
"""The key id of the `--admin-key` / BATCHYARD_ADMIN_KEY key (it is not stored)."""


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    admin: bool
    """Admin API keys manage the organization and may act in any workspace."""
    workspace_id: str | None
    """A workspace key's own workspace; None for admin keys."""
    workspace: WorkspaceRecord | None = None
    """That workspace as read with the key (one store read for both)."""


OPEN = Principal(key_id="", admin=True, workspace_id=None)
"""Everyone, with `--no-auth` (loopback only)."""


class Authenticator:
    def __init__(self, tenancy: Tenancy, *, admin_key: str | None, enabled: bool = True) -> None:
        self.tenancy = tenancy
        self.enabled = enabled
        self._admin_digest = keys.digest(admin_key) if admin_key else None

    async def authenticate(self, key: str | None) -> Principal:
        if not self.enabled:
            return OPEN
        if key is None:
            raise AuthenticationFailed(
                "Missing API key: send it in the x-api-key header or as Authorization: Bearer <key>"
            )
        digest = keys.digest(key)
        if self._admin_digest is not None and hmac.compare_digest(digest, self._admin_digest):
            return Principal(ENV_ADMIN_KEY_ID, admin=True, workspace_id=None)
        found = await self.tenancy.store.key_by_digest(digest)
        if found is None:
            raise AuthenticationFailed("invalid x-api-key")
        record, workspace = found
        status = self.tenancy.status_of(record)
        if status != "active":
            raise AuthenticationFailed(f"This API key is {status}")
        return Principal(record.id, record.kind == "admin", record.workspace_id, workspace)

    async def workspace(self, principal: Principal, requested: str | None) -> WorkspaceRecord:
        """The workspace this call acts in.

        An admin key picks one with `anthropic-workspace-id` (default: the default
        workspace); a workspace key acts in its own, and a header naming another
        is refused.
        """
        if principal.admin:
            workspace_id = requested or DEFAULT_WORKSPACE
        else:
            assert principal.workspace_id is not None
            if requested and requested != principal.workspace_id:
                raise PermissionDenied(
                    "The anthropic-workspace-id header does not match this API key's workspace"
                )
            workspace_id = principal.workspace_id
        workspace = principal.workspace
        if workspace is None or workspace.id != workspace_id:
            workspace = await self.tenancy.store.get_workspace(workspace_id)
        if workspace is None:
            raise NotFound(f"workspace {workspace_id!r} not found")
        if workspace.archived_at is not None:
            raise PermissionDenied(f"workspace {workspace_id!r} is archived")
        return workspace
