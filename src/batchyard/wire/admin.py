"""Admin API wire structs: workspaces, API keys, the usage report (the hosted API's shapes).

batchyard's additions are marked: `rate_limits` on a workspace, `POST
/v1/organizations/api_keys` (the hosted API makes keys only in its console) with
the one-time `key` in its answer, and `requests` in usage results.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Limit = Annotated[int, msgspec.Meta(ge=1, le=2_000_000_000)]


class WorkspaceRateLimits(msgspec.Struct, forbid_unknown_fields=True):
    """batchyard: per-workspace limits; null means the server's default."""

    requests_per_minute: Limit | None = None
    batch_requests_per_minute: Limit | None = None
    batch_queued_requests: Limit | None = None


class DataResidency(msgspec.Struct):
    allowed_inference_geos: str = "unrestricted"
    default_inference_geo: str = "global"
    workspace_geo: str = "us"


class Workspace(msgspec.Struct):
    id: str
    name: str
    created_at: datetime
    archived_at: datetime | None
    display_color: str
    compartment_id: str
    rate_limits: WorkspaceRateLimits
    data_residency: DataResidency = msgspec.field(default_factory=DataResidency)
    tags: dict[str, str] = msgspec.field(default_factory=dict)
    external_key_id: str | None = None
    user_profile_id: str | None = None
    type: Literal["workspace"] = "workspace"


class WorkspaceCreateIn(msgspec.Struct):
    name: Name
    display_color: str | None = None
    rate_limits: WorkspaceRateLimits | None = None


class WorkspaceUpdateIn(msgspec.Struct):
    name: Name | None = None
    rate_limits: WorkspaceRateLimits | None = None


class WorkspaceScope(msgspec.Struct, tag="workspace", tag_field="type"):
    workspace_id: str


class OrganizationScope(msgspec.Struct, tag="organization", tag_field="type"):
    pass


class ApiKey(msgspec.Struct):
    id: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    partial_key_hint: str
    scope: WorkspaceScope | OrganizationScope
    status: str
    workspace_id: str | None
    """Also at the top level, as older Admin API answers have it."""
    created_by: None = None
    type: Literal["api_key"] = "api_key"


class CreatedApiKey(ApiKey, kw_only=True):
    key: str
    """batchyard: the secret, in the answer that creates the key and nowhere else."""


class ApiKeyCreateIn(msgspec.Struct, forbid_unknown_fields=True):
    """batchyard: a workspace key (`workspace_id`) or an Admin API key (`admin: true`)."""

    name: Name
    workspace_id: str | None = None
    admin: bool = False
    expires_at: datetime | None = None


class ApiKeyUpdateIn(msgspec.Struct):
    name: Name | None = None
    status: Literal["active", "inactive", "archived"] | None = None


class WorkspacePage(msgspec.Struct):
    data: list[Workspace]
    has_more: bool
    first_id: str | None
    last_id: str | None


class ApiKeyPage(msgspec.Struct):
    data: list[ApiKey]
    has_more: bool
    first_id: str | None
    last_id: str | None


class CacheCreation(msgspec.Struct):
    ephemeral_1h_input_tokens: int = 0
    ephemeral_5m_input_tokens: int = 0


class ServerToolUse(msgspec.Struct):
    web_search_requests: int = 0


class UsageResult(msgspec.Struct):
    uncached_input_tokens: int
    output_tokens: int
    requests: int
    """batchyard: messages answered (succeeded batch requests and interactive calls)."""
    api_key_id: str | None = None
    workspace_id: str | None = None
    model: str | None = None
    service_tier: str | None = None
    context_window: str | None = None
    cache_read_input_tokens: int = 0
    cache_creation: CacheCreation = msgspec.field(default_factory=CacheCreation)
    server_tool_use: ServerToolUse = msgspec.field(default_factory=ServerToolUse)


class UsageBucket(msgspec.Struct):
    starting_at: datetime
    ending_at: datetime
    results: list[UsageResult]


class UsageReport(msgspec.Struct):
    data: list[UsageBucket]
    has_more: bool
    next_page: str | None


class CostResult(msgspec.Struct):
    """One cost item of a bucket (the hosted cost report's); the fields other than
    `amount`/`currency` are null unless the report is grouped by them."""

    amount: str
    """In cents, as a decimal string ("123.45" is $1.23)."""
    currency: str = "USD"
    workspace_id: str | None = None
    description: str | None = None
    cost_type: str | None = None
    context_window: str | None = None
    model: str | None = None
    service_tier: str | None = None
    token_type: str | None = None
    inference_geo: str | None = None


class CostBucket(msgspec.Struct):
    starting_at: datetime
    ending_at: datetime
    results: list[CostResult]


class CostReport(msgspec.Struct, omit_defaults=True):
    data: list[CostBucket]
    has_more: bool
    next_page: str | None
    batchyard_note: str | None = None
    """batchyard: why the report is empty or partial (models without prices)."""


class OrganizationInfo(msgspec.Struct):
    id: str
    name: str
    type: Literal["organization"] = "organization"
