"""The sums a flush of outcomes adds to the usage counters: per batch and model."""

from __future__ import annotations

from collections.abc import Sequence

from batchyard.clock import hour_start
from batchyard.store.layout import batch_of
from batchyard.store.records import Outcome, UsageRow

UsageSums = dict[tuple[int, str], list[int]]


def usage_sums(finished: Sequence[Outcome]) -> UsageSums:
    """(batch seq, model) -> [requests, then the token counts of `TokenUsage.counts`]."""
    sums: UsageSums = {}
    for o in finished:
        if o.usage is not None:
            acc = sums.setdefault((batch_of(o.key), o.usage.model), [0] * 6)
            acc[0] += 1
            for i, n in enumerate(o.usage.counts(), 1):
                acc[i] += n
    return sums


def usage_rows(sums: UsageSums, owners: dict[int, tuple[str, str]], now: float) -> list[UsageRow]:
    """The batch usage rows of `sums`; `owners` maps a batch seq to (workspace, key id)."""
    bucket = hour_start(now)
    return [
        UsageRow(bucket, *owners[seq], model, "batch", *acc)
        for (seq, model), acc in sums.items()
        if seq in owners
    ]
