"""An engine's concurrency: a semaphore whose waiting interactive calls go before batch work.

`capacity` may change while in use (remote engines shrink it on 429s and grow it
back); a release then hands the slot on only while fewer than `capacity` are held.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque


class Priority(enum.IntEnum):
    INTERACTIVE = 0
    BATCH = 1


class PrioritySlots:
    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self.in_use = 0
        self._waiters: tuple[deque[asyncio.Future[None]], ...] = (deque(), deque())

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._waiters)

    async def acquire(self, priority: Priority) -> None:
        if self.in_use < self.capacity and not any(self._waiters):
            self.in_use += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._waiters[priority]
        queue.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # the slot was handed over as we were cancelled
            elif future in queue:  # (a release may already have dropped it, cancelled)
                queue.remove(future)
            raise

    def release(self) -> None:
        self.in_use -= 1
        self._wake()

    def set_capacity(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self._wake()

    def _wake(self) -> None:
        for queue in self._waiters:
            while queue and self.in_use < self.capacity:
                future = queue.popleft()
                if not future.done():
                    self.in_use += 1
                    future.set_result(None)
