"""Requests per minute per workspace: token buckets, with the hosted API's headers.

A bucket holds up to one minute's allowance and refills continuously, so a
workspace may burst its whole per-minute limit and then goes at the steady rate.
The buckets live in the API process: with N API replicas behind a balancer,
each enforces the limit on what it sees (divide the limit by N).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from batchyard.errors import RateLimited


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


@dataclass(frozen=True, slots=True)
class Quota:
    limit: int
    remaining: int
    reset_at: float
    """When the bucket will be full again (unix seconds)."""

    def headers(self) -> dict[str, str]:
        reset = datetime.fromtimestamp(math.ceil(self.reset_at), tz=UTC)
        return {
            "anthropic-ratelimit-requests-limit": str(self.limit),
            "anthropic-ratelimit-requests-remaining": str(self.remaining),
            "anthropic-ratelimit-requests-reset": reset.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


class RateLimiter:
    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def take(self, workspace_id: str, group: str, per_minute: int) -> Quota:
        """Spend one request of `workspace_id`'s `group` allowance, or raise RateLimited."""
        now = self._now()
        rate = per_minute / 60.0
        bucket = self._buckets.get((workspace_id, group))
        if bucket is None:
            bucket = self._buckets[(workspace_id, group)] = _Bucket(float(per_minute), now)
        bucket.tokens = min(float(per_minute), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens < 1.0:
            quota = Quota(per_minute, 0, now + (per_minute - bucket.tokens) / rate)
            wait = (1.0 - bucket.tokens) / rate
            raise RateLimited(
                f"This workspace has exceeded its rate limit of {per_minute} {group} requests"
                f" per minute; retry after {math.ceil(wait)} s",
                retry_after=wait,
                headers=quota.headers(),
            )
        bucket.tokens -= 1.0
        return Quota(per_minute, int(bucket.tokens), now + (per_minute - bucket.tokens) / rate)
