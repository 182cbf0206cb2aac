"""Usage: interactive calls counted into the hourly counters, and the usage report that
sums them into time buckets and groups.

The report's shape and parameters are the hosted Admin API's
`GET /v1/organizations/usage_report/messages`; `service_tier` tells batch
results (`batch`, counted by the workers) from interactive calls (`standard`).
"""

from __future__ import annotations

import base64
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from batchyard.clock import Clock, hour_start, to_datetime
from batchyard.errors import InvalidRequest
from batchyard.store.port import TenancyStore
from batchyard.store.records import TokenUsage, UsageRow
from batchyard.wire.admin import CacheCreation, UsageBucket, UsageReport, UsageResult

WIDTHS = {"1h": 3600, "1d": 86400}
_PAGE_SIZES = {"1h": (24, 168), "1d": (7, 31)}  # (default, most) buckets per page
GROUPS = ("api_key_id", "workspace_id", "model", "service_tier", "context_window")
_FILTERS = {
    "api_key_ids": "api_key_id",
    "workspace_ids": "workspace_id",
    "models": "model",
    "service_tiers": "service_tier",
}


@dataclass(slots=True)
class UsageQuery:
    starting_at: str
    ending_at: str | None = None
    bucket_width: str = "1d"
    group_by: Sequence[str] = ()
    filters: dict[str, Sequence[str]] = field(default_factory=dict)
    """`workspace_ids`, `api_key_ids`, `models`, `service_tiers` → allowed values."""
    limit: int | None = None
    page: str | None = None


def _instant(name: str, text: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"{name}: {text!r} is not an RFC 3339 date-time") from None
    if moment.tzinfo is None:
        raise InvalidRequest(f"{name}: give a time zone (e.g. 2026-11-01T00:00:00Z)")
    seconds = int(moment.timestamp())
    if not 0 <= seconds < _LATEST:
        raise InvalidRequest(f"{name}: must be between 1970 and 9000")
    return seconds


_LATEST = int(datetime(9000, 1, 1, tzinfo=UTC).timestamp())
"""A report's instants end here: a page of buckets after it would pass year 9999."""


def _decode_page(page: str) -> int:
    try:
        return int(base64.urlsafe_b64decode(page.encode()).decode())
    except ValueError:
        raise InvalidRequest(f"page: {page!r} is not a cursor from next_page") from None


def _encode_page(start: int) -> str:
    return base64.urlsafe_b64encode(str(start).encode()).decode()


class UsageService:
    def __init__(self, store: TenancyStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    async def count_call(self, workspace_id: str, api_key_id: str, usage: TokenUsage) -> None:
        """Add one interactive call (service tier `standard`) to this hour's counters."""
        row = UsageRow(
            hour_start(self.clock.now()),
            workspace_id,
            api_key_id,
            usage.model,
            "standard",
            1,
            *usage.counts(),
        )
        await self.store.add_usage([row])

    async def report(self, q: UsageQuery) -> UsageReport:
        return await usage_report(self.store, q)


@dataclass(frozen=True, slots=True)
class Window:
    """One page of a report: buckets of `width` seconds from `start` to `end`, and the
    cursor of the next page (None on the last)."""

    start: int
    end: int
    width: int
    next_page: str | None


def report_window(
    starting_at: str, ending_at: str | None, bucket_width: str, limit: int | None, page: str | None
) -> Window:
    """The page of buckets a usage or cost report's parameters ask for (hosted rules:
    buckets snapped to their width, a default and a most per page, `page` cursors)."""
    if bucket_width not in WIDTHS:
        raise InvalidRequest(
            f"bucket_width: {bucket_width!r} is not available here; usage is counted per"
            " hour, so use 1h or 1d"
        )
    width = WIDTHS[bucket_width]
    default_size, most = _PAGE_SIZES[bucket_width]
    size = limit or default_size
    if not 1 <= size <= most:
        raise InvalidRequest(f"limit: must be between 1 and {most} for bucket_width {bucket_width}")
    start = _instant("starting_at", starting_at) // width * width
    end = _instant("ending_at", ending_at) if ending_at else start + size * width
    if end <= start:
        raise InvalidRequest("ending_at: must be after starting_at")
    cursor = _decode_page(page) if page else start
    if not start <= cursor < end:
        raise InvalidRequest("page: the cursor is outside this report's range")
    n = min(size, -(-(end - cursor) // width))
    page_end = min(end, cursor + n * width)
    return Window(cursor, page_end, width, _encode_page(page_end) if page_end < end else None)


def bucket_bounds(window: Window) -> list[tuple[datetime, datetime]]:
    return [
        (to_datetime(lo), to_datetime(min(lo + window.width, window.end)))
        for lo in range(window.start, window.end, window.width)
    ]


async def usage_report(store: TenancyStore, q: UsageQuery) -> UsageReport:
    for name in q.group_by:
        if name not in GROUPS:
            raise InvalidRequest(f"group_by: {name!r} is not one of {', '.join(GROUPS)}")
    window = report_window(q.starting_at, q.ending_at, q.bucket_width, q.limit, q.page)
    rows = [r for r in await store.usage(window.start, window.end) if _wanted(r, q.filters)]
    buckets = _buckets(rows, window, q.group_by)
    return UsageReport(
        data=buckets, has_more=window.next_page is not None, next_page=window.next_page
    )


def _wanted(row: UsageRow, filters: dict[str, Sequence[str]]) -> bool:
    return all(
        not allowed or getattr(row, _FILTERS[name]) in allowed for name, allowed in filters.items()
    )


def _buckets(rows: list[UsageRow], window: Window, group_by: Sequence[str]) -> list[UsageBucket]:
    sums: dict[int, dict[tuple[str, ...], list[int]]] = defaultdict(
        lambda: defaultdict(lambda: [0] * 6)
    )
    for row in rows:
        group = tuple(_group_value(row, name) for name in group_by)
        acc = sums[(row.bucket - window.start) // window.width][group]
        counts = (
            row.input_tokens,
            row.output_tokens,
            row.requests,
            row.cache_read_input_tokens,
            row.cache_creation_5m_input_tokens,
            row.cache_creation_1h_input_tokens,
        )
        for k, n in enumerate(counts):
            acc[k] += n
    buckets = []
    for i, (lo, hi) in enumerate(bucket_bounds(window)):
        results = []
        for group, acc in sorted(sums.get(i, {}).items()):
            tokens_in, tokens_out, requests, read, created_5m, created_1h = acc
            result = UsageResult(
                tokens_in,
                tokens_out,
                requests,
                cache_read_input_tokens=read,
                cache_creation=CacheCreation(
                    ephemeral_1h_input_tokens=created_1h, ephemeral_5m_input_tokens=created_5m
                ),
            )
            for name, value in zip(group_by, group, strict=True):
                setattr(result, name, value or None)
            results.append(result)
        buckets.append(UsageBucket(lo, hi, results))
    return buckets


def _group_value(row: UsageRow, name: str) -> str:
    if name == "context_window":
        return "0-200k"
    value: str = getattr(row, name)
    return value
