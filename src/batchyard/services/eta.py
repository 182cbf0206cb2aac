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

The shared finish times are worked out once per sample for every open batch
(`ShareModel`, cached on `Samples`: O(n log n) to build, O(log n) a batch), so an
ETA asked for each of thousands of open batches (the metrics' `at_risk`) costs no
more than one sort.

Both rates are approximations of what the scheduler does. Claims keep to one prompt-prefix
group for a run (`store.claims.Grouping`: about 4x a worker's concurrency requests,
then the next group in the fair rotation, which is the next workspace's turn), so
the engines are not shared evenly at every moment: a batch's own rate stops or jumps
at run boundaries, and the share model for a batch not started is an average over
runs, not a schedule. A batch's own rate is the window's average, so one that stopped
at a run boundary has a rate that decays while it waits; one that has not moved for
a whole window (its count unchanged since a sample a window old, which is then the
base of its rate) has no rate of its own any more, and gets its share of the
deployment's rate like a batch not started (unknown when nothing moves anywhere):
a stale rate is not extrapolated.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate

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


class ShareModel:
    """When each open batch's last request finishes if the deployment's finishes are
    shared as the scheduler shares them: equally between the workspaces with work,
    then equally between each one's batches; a batch that ends passes its share on
    (to its workspace's others, or, its workspace done, to the other workspaces).

    Water-filling, in units of work: a workspace's batches all get the same until the
    smallest ends, so batch b of a workspace ends once the workspace has been given
    `level(b)` = b's requests left + each of its others' left, capped at b's; and every
    workspace with work is given the same until it runs out, so by then the deployment
    has done the sum over workspaces of min(workspace's left, level(b)). Seconds:
    that work over the rate. Sorted sizes and prefix sums make each O(log n).

    `remaining`: batch id → (workspace id, requests left)."""

    def __init__(self, remaining: Mapping[str, tuple[str, int]]) -> None:
        self.left = {i: (w, n) for i, (w, n) in remaining.items() if n > 0}
        by_space: dict[str, list[int]] = {}
        for w, n in self.left.values():
            by_space.setdefault(w, []).append(n)
        self._sizes = {w: sorted(ns) for w, ns in by_space.items()}
        self._sums = {w: list(accumulate(ns, initial=0)) for w, ns in self._sizes.items()}
        self._totals = sorted(sums[-1] for sums in self._sums.values())
        self._total_sums = list(accumulate(self._totals, initial=0))

    def work_until(self, batch_id: str, workspace: str, n: int) -> int:
        """Requests the deployment finishes until the last of batch `batch_id`'s (in
        `workspace`, `n` left; replacing what the model had of it)."""
        if n <= 0:
            return 0
        sizes, sums = self._sizes.get(workspace, []), self._sums.get(workspace, [0])
        had = self.left.get(batch_id, (workspace, 0))[1]
        level = _capped(sizes, sums, n) - min(had, n) + n
        # Its workspace's left is now at least `level`: it takes `level` in full.
        return _capped(self._totals, self._total_sums, level) - min(sums[-1], level) + level


def _capped(sizes: Sequence[int], sums: Sequence[int], cap: int) -> int:
    """sum(min(x, cap) for x in sizes), `sizes` sorted, `sums` their prefix sums."""
    k = bisect_right(sizes, cap)
    return sums[k] + cap * (len(sizes) - k)


def shared_finishes(remaining: Mapping[str, tuple[str, int]], rate: float) -> dict[str, float]:
    """Seconds until each batch's last request finishes when `rate` requests/s are
    shared as the scheduler shares them (`ShareModel`).

    `remaining`: batch id → (workspace id, requests left)."""
    model = ShareModel(remaining)
    return {i: model.work_until(i, w, n) / rate for i, (w, n) in remaining.items()}


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
        self._shares: ShareModel | None = None

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
        self._shares = None
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

    def shares(self) -> ShareModel:
        """The share model of the open batches as last sampled (built once a sample)."""
        if self._shares is None:
            remaining = {i: (o.workspace_id, o.processing) for i, o in self.open.items()}
            self._shares = ShareModel(remaining)
        return self._shares

    def deployment_rate(self, now: float) -> float | None:
        """Requests finished per second lately, every batch together; None when none finished."""
        values = [(s.t, s.total) for s in self._samples if s.t <= now]
        if len(values) < 2:
            return None
        found = self._since(values[-1][0], values[:-1], values[-1][1])
        return found[0] if found is not None else None


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
    seconds = samples.shares().work_until(b.id, b.workspace_id, b.processing) / total
    ends_at = now + seconds
    return Eta(
        ends_at, b.processing / seconds if seconds > 0 else None, at_risk(b, ends_at), "share"
    )
