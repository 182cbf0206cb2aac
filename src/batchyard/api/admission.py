"""What a request must pass before a route sees it: version and beta headers, the key,
the workspace it acts in, the Admin API's admin-only rule, and the rate limits."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.datastructures import Headers

from batchyard.api.endpoints import Endpoint
from batchyard.api.headers import check_betas, check_version
from batchyard.api.loopback import LoopbackGuard
from batchyard.auth.principal import Authenticator, Principal
from batchyard.auth.ratelimit import RateLimiter
from batchyard.errors import PermissionDenied
from batchyard.store.records import RateLimits, WorkspaceRecord


def api_key(headers: Headers) -> str | None:
    """The key from `x-api-key` (0.x SDKs, curl) or `Authorization: Bearer` (2.x SDK)."""
    key = headers.get("x-api-key")
    if key:
        return key.strip() or None
    auth = headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


@dataclass(slots=True)
class Admitted:
    principal: Principal | None = None
    workspace: WorkspaceRecord | None = None
    limits: RateLimits = field(default_factory=RateLimits)
    """The workspace's effective limits (its own, else the server's defaults)."""
    headers: dict[str, str] = field(default_factory=dict)
    """Headers for the response (rate-limit state, the workspace id)."""


class Admission:
    def __init__(
        self,
        authenticator: Authenticator,
        limiter: RateLimiter,
        defaults: RateLimits,
        guard: LoopbackGuard | None = None,
    ) -> None:
        self.authenticator = authenticator
        self.limiter = limiter
        self.defaults = defaults
        self.guard = guard
        """Without keys (`--no-auth`): only programs on this machine get in."""

    async def admit(self, endpoint: Endpoint | None, headers: Headers) -> Admitted:
        """What `endpoint` (None: a path no endpoint serves, answered after the key is
        checked, as the hosted API does) lets this request do."""
        if self.guard is not None:
            self.guard.check(headers)
        access = endpoint.access if endpoint is not None else "workspace"
        if access == "public":
            return Admitted()
        principal = await self.authenticator.authenticate(api_key(headers))
        version = endpoint is not None and endpoint.version
        check_version(headers.get("anthropic-version"), required=version)
        check_betas(headers.get("anthropic-beta"))
        if access == "admin":
            if not principal.admin:
                raise PermissionDenied(
                    "The Admin API needs an admin key (batchyard keys create --admin)"
                )
            return Admitted(principal)
        workspace = await self.authenticator.workspace(
            principal, headers.get("anthropic-workspace-id") or None
        )
        limits = self.limits_of(workspace)
        admitted = Admitted(principal, workspace, limits, {"anthropic-workspace-id": workspace.id})
        group = endpoint.rate if endpoint is not None else None
        per_minute = (
            limits.batch_requests_per_minute if group == "batch" else limits.requests_per_minute
        )
        if group is not None and per_minute is not None:
            quota = self.limiter.take(workspace.id, group, per_minute)
            admitted.headers.update(quota.headers())
        return admitted

    def limits_of(self, workspace: WorkspaceRecord) -> RateLimits:
        own, default = workspace.limits, self.defaults
        return RateLimits(
            own.requests_per_minute or default.requests_per_minute,
            own.batch_requests_per_minute or default.batch_requests_per_minute,
            own.batch_queued_requests or default.batch_queued_requests,
        )
