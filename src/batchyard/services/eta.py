"""A running batch's ETA, from measured throughput and the work queued ahead of it.

Pure (no I/O): `Samples` keeps what the caller saw of the open batches' finished
counts over the last minutes; `estimate` turns them and a batch's record into an `Eta`:

- its own recent finish rate when it has one (the last `WINDOW_SECONDS`, from the
  first sample where it was already moving: not the lifetime average, which counts
  the queueing before it started), scaled by its fair share now over its share in
  that window (a batch that another workspace's batch has just joined slows down at
  once, not a minute later);
- else (not started, or barely: fewer than `MIN_FINISHED` finishes in the window) the
  deployment's recent finish rate shared as the scheduler shares it — workspaces in
  rotation, then the batches of each — with the finish time of every open batch
  worked out as the others end and their share passes on;
- else unknown: nothing has finished anywhere lately.

`at_risk`: the estimated end is later than `expires_at` less a small margin (5% of
the batch's window, at most 5 minutes), so a batch that cannot finish is flagged
while there is time to act, not discovered when it expires.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from batchyard.store.records import BatchRecord

WINDOW_SECONDS = 60.0
"""What "recent" means: rates are measured over about the last minute."""
MAX_AGE_SECONDS = 300.0
"""A sample older than this is too old to measure a rate from."""
MIN_FINISHED = 5
"""A batch with fewer finishes than this in the window has no rate of its own yet."""
MIN_SPAN_SECONDS = 1.0
"""Two samples closer than this measure no rate."""
MARGIN_SECONDS = 300.0
MARGIN_FRACTION = 0.05
MAX_SHARE_EVENTS = 2000
"""Beyond this many open batches the shares are not followed as batches end."""


@dataclass(frozen=True, slots=True)
class Eta:
    ends_at: float | None
    """Estimated end (Unix seconds); None when unknown."""
    rate: float | None
    """The requests per second this batch is expected to finish at."""
    at_risk: bool
    """It is not expected to finish before it expires."""
    basis: str
    """`batch` (its own recent rate), `share` (its share of the deployment's), `unknown`."""


UNKNOWN = Eta(None, None, False, "unknown")


def done_of(b: BatchRecord) -> int:
    """Requests the engines finished (cancels and expiries are not throughput)."""
    return b.succeeded + b.errored


def margin(b: BatchRecord) -> float:
    return min(MARGIN_SECONDS, MARGIN_FRACTION * max(0.0, b.expires_at - b.created_at))


def at_risk(b: BatchRecord, ends_at: float | None) -> bool:
    return ends_at is not None and ends_at > b.expires_at - margin(b)


@dataclass(frozen=True, slots=True)
class _Sample:
    t: float
    done: dict[str, int]
    """Each open batch's finished requests."""
    total: int
    """Finished requests of every batch since the first sample (a running sum)."""
    share: dict[str, float]
    """Each batch with work left: its fair share of the engines then."""


def fair_shares(remaining: Mapping[str, tuple[str, int]]) -> dict[str, float]:
    """What share of the engines each batch with work left gets from the scheduler:
    an equal part of its workspace's, the workspaces with work sharing equally.

    `remaining`: batch id → (workspace id, requests left)."""
    per_workspace: dict[str, int] = {}
    for w, n in remaining.values():
        if n > 0:
            per_workspace[w] = per_workspace.get(w, 0) + 1
    return {
        i: 1.0 / len(per_workspace) / per_workspace[w] for i, (w, n) in remaining.items() if n > 0
    }


class Samples:
    """The open batches' finished counts seen at a few moments of the last minutes.

    `add` takes every open batch's record at `now`, and the final records of those
    that have ended since the previous sample (so their last finishes still count
    in the deployment's rate). Kept: the samples of the last `WINDOW_SECONDS`, and
    the newest one before that (the base of a window-long rate), none older than
    `MAX_AGE_SECONDS`."""

    def __init__(self) -> None:
        self._samples: deque[_Sample] = deque()
        self.open: dict[str, BatchRecord] = {}
        """The open batches as last sampled."""

    @property
    def taken_at(self) -> float | None:
        return self._samples[-1].t if self._samples else None

    def add(
        self, now: float, open_batches: Iterable[BatchRecord], ended: Iterable[BatchRecord] = ()
    ) -> None:
        last = self._samples[-1] if self._samples else None
        opened = {b.id: b for b in open_batches}
        total = last.total if last else 0
        if last is not None:
            for b in [*opened.values(), *ended]:
                # A batch not seen before was created since: it had finished none.
                total += max(0, done_of(b) - last.done.get(b.id, 0))
        self.open = opened
        done = {i: done_of(b) for i, b in opened.items()}
        shares = fair_shares({i: (b.workspace_id, b.processing) for i, b in opened.items()})
        self._samples.append(_Sample(now, done, total, shares))
        while self._samples and self._samples[0].t < now - MAX_AGE_SECONDS:
            self._samples.popleft()
        while len(self._samples) > 2 and self._samples[1].t <= now - WINDOW_SECONDS:
            self._samples.popleft()

    def _since(
        self, now: float, values: list[tuple[float, int]], current: int
    ) -> tuple[float, int] | None:
        """Finishes per second from the base sample to `current` at `now`, skipping
        the samples before the count first moved (queueing is not throughput); and
        the index of the base."""
        if not values:
            return None
        start = 0
        for i in range(1, len(values)):
            if values[i][1] != values[0][1]:
                break
            start = i
        t, base = values[start]
        span = now - t
        if span < MIN_SPAN_SECONDS or current <= base:
            return None
        return (current - base) / span, start

    def batch_rate(self, b: BatchRecord, now: float) -> float | None:
        """The batch's own recent finish rate, if it has finished enough lately to have
        one, at its share of the engines now."""
        kept = [s for s in self._samples if b.id in s.done and s.t <= now]
        seen = [(s.t, s.done[b.id]) for s in kept]
        if not seen or done_of(b) - seen[0][1] < MIN_FINISHED:
            return None
        found = self._since(now, seen, done_of(b))
        if found is None:
            return None
        measured, start = found
        then = [s.share[b.id] for s in kept[start:] if b.id in s.share]
        share_now = kept[-1].share.get(b.id)
        if not then or share_now is None:
            return measured
        return measured * share_now / (sum(then) / len(then))

    def deployment_rate(self, now: float) -> float | None:
        """Requests finished per second lately, every batch together; None when none finished."""
        values = [(s.t, s.total) for s in self._samples if s.t <= now]
        if len(values) < 2:
            return None
        found = self._since(values[-1][0], values[:-1], values[-1][1])
        return found[0] if found is not None else None


def shared_finishes(remaining: Mapping[str, tuple[str, int]], rate: float) -> dict[str, float]:
    """Seconds until each batch's last request finishes when `rate` requests/s are
    shared as the scheduler shares them: equally between the workspaces with work,
    then equally between each one's batches; a batch that ends passes its share on.

    `remaining`: batch id → (workspace id, requests left)."""
    left = {i: float(n) for i, (_, n) in remaining.items() if n > 0}
    ends = {i: 0.0 for i, (_, n) in remaining.items() if n <= 0}
    workspace = {i: w for i, (w, _) in remaining.items()}
    t = 0.0
    for _ in range(MAX_SHARE_EVENTS):
        if not left:
            return ends
        share = {i: rate * f for i, f in fair_shares({i: (workspace[i], 1) for i in left}).items()}
        step = min(n / share[i] for i, n in left.items())
        t += step
        for i in list(left):
            left[i] -= share[i] * step
            if left[i] <= 1e-9 * max(1.0, share[i]):
                ends[i] = t
                del left[i]
    # Too many batches to follow: the rest at their current share.
    share = fair_shares({i: (workspace[i], 1) for i in left})
    for i, n in left.items():
        ends[i] = t + n / (rate * share[i])
    return ends


def estimate(b: BatchRecord, samples: Samples, now: float) -> Eta | None:
    """The ETA of batch `b` (its record as of `now`); None once it has ended."""
    if b.processing_status == "ended":
        return None
    if b.processing <= 0:
        return Eta(now, samples.batch_rate(b, now), False, "batch")
    own = samples.batch_rate(b, now)
    if own is not None:
        ends_at = now + b.processing / own
        return Eta(ends_at, own, at_risk(b, ends_at), "batch")
    total = samples.deployment_rate(now)
    if total is None:
        return UNKNOWN
    remaining = {i: (o.workspace_id, o.processing) for i, o in samples.open.items()}
    remaining[b.id] = (b.workspace_id, b.processing)
    seconds = shared_finishes(remaining, total)[b.id]
    ends_at = now + seconds
    return Eta(
        ends_at, b.processing / seconds if seconds > 0 else None, at_risk(b, ends_at), "share"
    )
