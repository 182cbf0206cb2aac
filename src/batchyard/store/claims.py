"""How one claim is shared out: workspaces first, then each workspace's batches, in
rotating order, so that nobody is always served last and no batch starves another."""

from __future__ import annotations

from typing import TypeVar

CLAIM_PASSES = 3
"""A claim asks each batch for its share, then again (twice) for what the others lacked."""

T = TypeVar("T")


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
