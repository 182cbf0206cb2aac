"""How one claim is shared out: workspaces first, then each workspace's batches, in
rotating order, so that nobody is always served last and no batch starves another.

With a `Grouping` (a worker's memory across its claims) claims also keep to one
prompt-prefix group at a time: the batches whose requests start alike run together
for up to `run` requests, so an engine's prefix cache serves them instead of being
thrashed by four system prompts interleaved. The next group is chosen in the same
fair rotation (workspaces first, then a workspace's batches, the batch nearest its
deadline first once it is close), so over a window of runs every workspace still
gets its turn, and a group that runs dry hands the rest of the claim on at once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TypeVar

from batchyard.store.records import ClaimedRequest

CLAIM_PASSES = 3
"""A claim asks each batch for its share, then again (twice) for what the others lacked."""

T = TypeVar("T")
K = TypeVar("K", str, int)


def _rotated(items: list[T], turn: int) -> list[T]:
    start = turn % len(items)
    return items[start:] + items[:start]


def fair_order(spaces: dict[str, list[int]], turn: int) -> list[list[int]]:
    """Workspaces' batch lists for one claim: workspaces in rotating order, each
    one's batches in rotating order too, so nobody is always served last."""
    return [_rotated(seqs, turn) for seqs in _rotated(list(spaces.values()), turn)]


def shares(order: list[list[int]], room: int) -> list[tuple[int, int]]:
    """(batch, how many to claim) for one pass of a claim: an equal share per
    workspace, split equally across its batches. Batches that gave all they were
    asked for take part in the next pass, which hands out what the others lacked."""
    wants: list[tuple[int, int]] = []
    space_share = -(-room // len(order))
    for seqs in order:
        left = min(space_share, room)
        if left <= 0:
            break
        share = -(-left // len(seqs))
        for seq in seqs:
            want = min(share, left)
            if want <= 0:
                break
            wants.append((seq, want))
            left -= want
            room -= want
    return wants


def still_full(
    order: list[list[int]], wants: list[tuple[int, int]], got: dict[int, int]
) -> list[list[int]]:
    """The batches (per workspace) that gave all they were asked for in this pass."""
    asked = dict(wants)
    return [
        full for seqs in order if (full := [s for s in seqs if s in asked and got[s] == asked[s]])
    ]


URGENT_SECONDS = 2 * 3600.0
"""A batch this close to its `expires_at` is run first within its workspace's turn."""


@dataclass(frozen=True, slots=True)
class Claimable:
    """A batch with requests that may be claimable (in progress, not expired)."""

    seq: int
    workspace_id: str
    prefix: int | None
    """Its requests' most common prompt-prefix key (`wire.prefix_key`); None: unknown."""
    expires_at: float

    @property
    def group(self) -> tuple[str, int]:
        """Batches with one group run together; a batch without a prefix is its own."""
        return ("prefix", self.prefix) if self.prefix is not None else ("batch", self.seq)


def spaces_of(batches: Sequence[Claimable]) -> dict[str, list[int]]:
    """Each workspace's batch seqs, in the order given (by seq)."""
    spaces: dict[str, list[int]] = {}
    for b in batches:
        spaces.setdefault(b.workspace_id, []).append(b.seq)
    return spaces


@dataclass
class Grouping:
    """A worker's claim preference across claims: one prefix group at a time.

    `run`: requests claimed from one group before the rotation moves on (when others
    wait). The caller claims from each order `orders` yields and reports the count
    with `took` before asking for the next; an order that cannot fill the claim
    makes the next group current."""

    run: int
    group: tuple[str, int] | None = None
    served: int = 0
    """Requests claimed from the current group in its run so far."""
    _space_turn: int = 0
    _last_space: str | None = None
    _last_batch: dict[str, int] = field(default_factory=dict)

    def took(self, n: int) -> None:
        self.served += n

    def copy(self) -> Grouping:
        """A trial copy for one claim's transaction (`adopt` it once that commits: a
        claim rolled back must not move the rotation)."""
        return replace(self, _last_batch=dict(self._last_batch))

    def adopt(self, trial: Grouping) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(trial, f.name))

    def orders(self, batches: Sequence[Claimable], now: float) -> Iterator[list[list[int]]]:
        """Fair orders (as `fair_order` gives) to claim from, a group at a time: the
        current group while its run lasts, then the next groups in fair rotation (a
        group whose run is over comes last, should the others not fill the claim)."""
        left = list(batches)
        current = [b for b in left if b.group == self.group]
        later: list[Claimable] = []
        if current and self.served >= self.run and len({b.group for b in left}) > 1:
            later = current  # its run is over and others wait: their turn first
            left = [b for b in left if b.group != self.group]
            current = []
        while left:
            if not current:
                self.group = self._next_group(left, now)
                self.served = 0
                self._space_turn += 1
                current = [b for b in left if b.group == self.group]
            yield fair_order(spaces_of(current), self._space_turn)
            left = [b for b in left if b.group != self.group]
            current = []
        if later:
            self.group, self.served = later[0].group, 0
            yield fair_order(spaces_of(later), self._space_turn)

    def _next_group(self, batches: list[Claimable], now: float) -> tuple[str, int]:
        """The group of the batch whose turn it is: the workspace after the last one
        served (by name, cyclically), and in it the batch nearest its deadline if one
        is close, else the batch after its last one served (by seq, cyclically)."""
        spaces = spaces_of(batches)
        space = _after(sorted(spaces), self._last_space)
        self._last_space = space
        by_seq = {b.seq: b for b in batches}
        mine = [by_seq[seq] for seq in spaces[space]]
        urgent = [b for b in mine if b.expires_at - now < URGENT_SECONDS]
        if urgent:
            return min(urgent, key=lambda b: (b.expires_at, b.seq)).group
        seq = _after([b.seq for b in mine], self._last_batch.get(space))
        self._last_batch[space] = seq
        return by_seq[seq].group


def _after(items: list[K], last: K | None) -> K:
    """The first of sorted `items` after `last`, cyclically (the first if none is)."""
    if last is not None:
        for item in items:
            if item > last:
                return item
    return items[0]


ClaimPass = Callable[[list[tuple[int, int]]], Awaitable[list[ClaimedRequest]]]
"""Claim up to `want` queued requests of each (batch, want) a store holds."""


async def claim_in_turn(
    batches: Sequence[Claimable],
    limit: int,
    turn: int,
    grouping: Grouping | None,
    now: float,
    claim_pass: ClaimPass,
) -> list[ClaimedRequest]:
    """One claim of up to `limit` over the batches with claimable requests: one fair
    order over all of them (rotated by `turn`), or with `grouping`, a group at a time."""
    if grouping is None:
        orders: Iterable[list[list[int]]] = (
            [fair_order(spaces_of(batches), turn)] if batches else []
        )
    else:
        orders = grouping.orders(batches, now)
    claimed: list[ClaimedRequest] = []
    for order in orders:
        taken = await _claim_fairly(order, limit - len(claimed), claim_pass)
        if grouping is not None:
            grouping.took(len(taken))
        claimed += taken
        if len(claimed) >= limit:
            break
    return claimed


async def _claim_fairly(
    order: list[list[int]], room: int, claim_pass: ClaimPass
) -> list[ClaimedRequest]:
    """Up to `room` requests from the batches of `order`, in fair shares (a few passes:
    what some batches lacked goes to the others)."""
    claimed: list[ClaimedRequest] = []
    for _ in range(CLAIM_PASSES):
        if len(claimed) >= room or not order:
            break
        wants = shares(order, room - len(claimed))
        taken = await claim_pass(wants)
        claimed += taken
        order = still_full(order, wants, Counter(r.batch_seq for r in taken))
    return claimed
