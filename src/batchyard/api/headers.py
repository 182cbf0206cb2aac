"""The `anthropic-version` and `anthropic-beta` request headers, checked as the hosted API does."""

from __future__ import annotations

from datetime import date

from batchyard.errors import InvalidRequest

FIRST_VERSION = date(2023, 1, 1)

KNOWN_BETAS = frozenset(
    {
        "admin-user-sign-out-2026-10-08",
        "advisor-tool-2026-03-01",
        "agent-memory-2026-07-22",
        "analytics-usage-cost-2026-08-24",
        "cache-diagnosis-2026-04-07",
        "ce-claude-code-managed-settings-2026-10-06",
        "ce-plugins-2026-09-01",
        "ce-user-management-2026-07-13",
        "code-execution-2025-05-22",
        "compact-2026-01-12",
        "compact-2026-09-04",
        "computer-use-2024-10-22",
        "computer-use-2025-01-24",
        "computer-use-2025-11-24",
        "context-1m-2025-08-07",
        "context-management-2025-06-27",
        "dev-full-thinking-2025-05-14",
        "dreaming-2026-04-21",
        "efs-2026-10-01",
        "experimental-claude-tag-2026-10-21",
        "extended-cache-ttl-2025-04-11",
        "fallback-credit-2026-06-01",
        "fallback-credit-2026-07-01",
        "fast-mode-2026-02-01",
        "files-api-2025-04-14",
        "google-managed-data-controls-2026-09-01",
        "inline-tools-2026-09-15",
        "interleaved-thinking-2025-05-14",
        "managed-agents-2026-04-01",
        "mcp-client-2025-04-04",
        "mcp-client-2025-11-20",
        "mcp-client-2026-09-15",
        "mcp-tunnels-2026-06-22",
        "message-batches-2024-09-24",
        "message-threads-2026-08-12",
        "mid-conversation-output-config-2026-07-01",
        "mid-conversation-system-clear-at-2026-08-21",
        "mid-conversation-tool-changes-2026-07-01",
        "model-context-window-exceeded-2025-08-26",
        "output-128k-2025-02-19",
        "output-300k-2026-03-24",
        "pdfs-2024-09-25",
        "prompt-caching-2024-07-31",
        "server-side-fallback-2026-06-01",
        "server-side-fallback-2026-07-01",
        "skills-2025-10-02",
        "spend-limit-reads-2026-09-26",
        "structured-outputs-2025-11-13",
        "task-budgets-2026-03-13",
        "telemetry-destinations-2026-08-11",
        "thinking-binding-controls-2026-08-01",
        "thinking-display-updates-2026-08-18",
        "thinking-token-count-2026-05-13",
        "token-counting-2024-11-01",
        "token-efficient-tools-2025-02-19",
        "user-profiles-2026-03-24",
        "user-profiles-2026-08-18",
        "user-profiles-2026-09-04",
        "user-profiles-billing-2026-10-01",
        "webhooks-2026-10-07",
    }
)
"""Every beta name the `anthropic` SDK (2.14) knows. batchyard accepts and ignores them."""


def check_version(value: str | None, *, required: bool) -> None:
    """A dated version (2023-01-01 or any later date) is accepted: the hosted API's
    versions are dates, and newer SDKs send newer ones."""
    if value is None:
        if required:
            raise InvalidRequest("anthropic-version: header is required")
        return
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        day = None
    if day is None or day < FIRST_VERSION or len(value.strip()) != 10:
        raise InvalidRequest(
            f"anthropic-version: {value!r} is not a valid version (send a date such as 2023-06-01)"
        )


def check_betas(value: str | None) -> None:
    if not value:
        return
    unknown = [b for b in (v.strip() for v in value.split(",")) if b and b not in KNOWN_BETAS]
    if unknown:
        names = ", ".join(f"`{b}`" for b in unknown)
        raise InvalidRequest(
            f"Unexpected value(s) {names} for the `anthropic-beta` header. Please consult our"
            " documentation or try again without the header."
        )
