"""Time as an injectable object, so expiry and retention are testable without sleeping."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that only moves when told to (unit tests)."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def to_datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def hour_start(epoch: float) -> int:
    """The start of the UTC hour holding `epoch` (usage is counted per hour)."""
    return int(epoch) // 3600 * 3600


def to_datetime_or_none(epoch: float | None) -> datetime | None:
    return None if epoch is None else to_datetime(epoch)
