"""Several replicas of one model without a router (two GPU boxes, say): one engine.

Each replica is an `OpenAICompatEngine` of its own, with its own connections and its
own admission from its own metrics. The set's `slots` (what the worker and the API
acquire) hold the sum of the replicas' capacities, and each call goes to a replica
with room: a prompt prefix (`wire.prefix_key`) to the replica that ran it last while
that one has room, so its prefix cache serves it; else the one with most room.

A replica that cannot be reached is taken out at once; one that answers 5xx
`STRIKES` times in a row too. It comes back after a pause that doubles each time it
is taken out again (`OUT_BASE` up to `OUT_MAX` seconds), on probation: one call at a
time until one succeeds. The call that met the failure goes to another replica,
without spending its attempt; only when no replica is left does its error stand. A
streamed call changes replica only before its first event.

The big fleets have routers (vllm-router, sglang-router): name the router as the one
`--upstream-url` and the replicas' metrics (`--upstream-metrics-url`) instead.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any, cast

import msgspec

from batchyard.engines.remote.errors import Unreachable
from batchyard.engines.remote.openai_compat import OpenAICompatEngine
from batchyard.engines.remote.upstream_load import UpstreamLoad, combine
from batchyard.engines.slots import Priority, PrioritySlots
from batchyard.errors import EngineError
from batchyard.wire.messages import Message, MessageCreateParams
from batchyard.wire.params import body_as_sent
from batchyard.wire.prefix_key import prefix_key
from batchyard.wire.streaming import StreamEvent

log = logging.getLogger("batchyard.replicas")

STRIKES = 3
"""5xx answers in a row after which a replica is taken out."""
OUT_BASE = 1.0
"""Seconds a replica stays out the first time; doubled each time again."""
OUT_MAX = 60.0
AFFINITY = 4096
"""Prompt prefixes remembered (the latest), each with the replica that ran it."""
REPLICA_FAULTS = frozenset(("api_error", "overloaded_error", "timeout_error"))
"""A retryable error of these types is the replica's, not the request's."""


class _Slots(PrioritySlots):
    """A replica's capacity (set by its admission), telling the set when it changes."""

    def __init__(self, capacity: int, on_change: Any) -> None:
        self._on_change = on_change
        super().__init__(capacity)

    def set_capacity(self, capacity: int) -> None:
        super().set_capacity(capacity)
        self._on_change()


class Replica:
    def __init__(self, engine: OpenAICompatEngine, url: str) -> None:
        self.engine = engine
        self.url = url
        self.out_until = 0.0
        """`time.monotonic()` until which it is out (0: never taken out)."""
        self.outs = 0
        """Times taken out since it last succeeded (the pause doubles with each)."""
        self.strikes = 0
        self.probation = False
        """Back after a pause: one call at a time until one succeeds."""
        self.chosen = 0
        """Calls given it by room alone (ties go to the one given fewest: new prefixes
        spread over an idle set instead of piling on its first replica)."""

    def in_service(self, now: float) -> bool:
        return now >= self.out_until

    def room(self) -> int:
        slots = self.engine.slots
        if self.probation:
            return 1 - slots.in_use
        return slots.capacity - slots.in_use


class ReplicaSet:
    features: frozenset[str] = frozenset()

    def __init__(
        self, base_urls: Sequence[str], *, capacity: int, name: str = "openai", **options: Any
    ) -> None:
        """`capacity`: each replica's most at once; `options`: OpenAICompatEngine's."""
        if len(base_urls) < 2:
            raise ValueError("a replica set needs two base URLs or more")
        self.name = name
        self.replicas = [
            Replica(
                OpenAICompatEngine(
                    url,
                    capacity=capacity,
                    name=f"{name} {url}",
                    slots=_Slots(capacity, self._resize),
                    **options,
                ),
                url,
            )
            for url in base_urls
        ]
        self.capacity = capacity * len(self.replicas)
        self.slots = PrioritySlots(self.capacity)
        self._affinity: OrderedDict[int, Replica] = OrderedDict()
        self._resize()

    def _resize(self) -> None:
        """The set's capacity: its replicas' in service (one for each on probation)."""
        if not hasattr(self, "slots"):
            return  # a replica's admission set its level while the set is being made
        now = time.monotonic()
        total = sum(
            (1 if r.probation else r.engine.slots.capacity)
            for r in self.replicas
            if r.in_service(now)
        )
        if total != self.slots.capacity:
            self.slots.set_capacity(max(1, total))

    @property
    def upstream_load(self) -> UpstreamLoad | None:
        """The replicas' load readings, added up (None until one came)."""
        loads = [load for r in self.replicas if (load := r.engine.upstream_load) is not None]
        return combine(loads) if loads else None

    @property
    def upstream_replicas(self) -> dict[str, UpstreamLoad | None]:
        """Each replica's latest load reading (None: its metrics did not answer), by
        its base URL; replicas whose metrics are not read are left out."""
        return {
            r.url: r.engine.upstream_load
            for r in self.replicas
            if r.engine.admission.probe is not None
        }

    def in_service(self) -> dict[str, bool]:
        """Each replica (by base URL): in service, or taken out (or back on probation,
        no call succeeded yet)."""
        now = time.monotonic()
        return {r.url: r.in_service(now) and not r.probation for r in self.replicas}

    def _pick(self, key: int | None, tried: set[Replica]) -> Replica | None:
        """The replica for the next call: its prefix's while that one has room, else one
        on probation, else the one with most room; None when every replica in service was
        tried."""
        self._resize()
        now = time.monotonic()
        candidates = [r for r in self.replicas if r not in tried and r.in_service(now)]
        if not candidates:
            return None
        if key is not None:
            last = self._affinity.get(key)
            if last is not None and last in candidates and last.room() > 0:
                self._affinity.move_to_end(key)
                return last
        probing = [r for r in candidates if r.probation and r.room() > 0]
        # a replica back from its pause is tried at once (a call at a time), else the
        # one with most room
        chosen = probing[0] if probing else max(candidates, key=lambda r: (r.room(), -r.chosen))
        chosen.chosen += 1
        if key is not None:
            self._affinity[key] = chosen
            self._affinity.move_to_end(key)
            if len(self._affinity) > AFFINITY:
                self._affinity.popitem(last=False)
        return chosen

    def _failed(self, replica: Replica, exc: EngineError) -> bool:
        """Whether the failure was the replica's (another may take the call); takes it
        out when it cannot be reached, or after STRIKES server errors in a row."""
        if isinstance(exc, Unreachable):
            self._take_out(replica, str(exc))
            return True
        if exc.retryable and exc.error_type in REPLICA_FAULTS:
            replica.strikes += 1
            if replica.strikes >= STRIKES or replica.probation:
                self._take_out(replica, str(exc))
            return True
        return False

    def _take_out(self, replica: Replica, why: str) -> None:
        replica.outs += 1
        replica.strikes = 0
        replica.probation = True
        pause = min(OUT_MAX, OUT_BASE * 2 ** (replica.outs - 1))
        replica.out_until = time.monotonic() + pause
        log.warning("%s: replica %s taken out for %.0f s: %s", self.name, replica.url, pause, why)
        self._resize()

    def _succeeded(self, replica: Replica) -> None:
        replica.strikes = 0
        if replica.probation:
            replica.probation = False
            replica.outs = 0
            log.info("%s: replica %s is back in service", self.name, replica.url)
            self._resize()

    async def create_message(
        self, params: MessageCreateParams, *, priority: Priority = Priority.BATCH
    ) -> Message:
        key = _prefix(params)
        tried: set[Replica] = set()
        while True:
            replica = self._next(key, tried)
            replica.engine.slots.in_use += 1
            try:
                message = await replica.engine.create_message(params, priority=priority)
            except EngineError as exc:
                if not self._failed(replica, exc) or not self._others(tried):
                    raise
                continue
            finally:
                replica.engine.slots.release()
            self._succeeded(replica)
            return message

    async def stream_message(
        self, params: MessageCreateParams, *, priority: Priority = Priority.BATCH
    ) -> AsyncIterator[StreamEvent]:
        key = _prefix(params)
        tried: set[Replica] = set()
        while True:
            replica = self._next(key, tried)
            replica.engine.slots.in_use += 1
            events = cast(
                AsyncGenerator[StreamEvent],
                replica.engine.stream_message(params, priority=priority),
            )
            try:
                try:
                    first = await anext(events)
                except EngineError as exc:
                    if not self._failed(replica, exc) or not self._others(tried):
                        raise
                    continue
                yield first
                async for event in events:
                    yield event
            finally:
                await events.aclose()
                replica.engine.slots.release()
            self._succeeded(replica)
            return

    def _next(self, key: int | None, tried: set[Replica]) -> Replica:
        replica = self._pick(key, tried)
        if replica is None:
            raise EngineError(
                "overloaded_error",
                f"{self.name}: no replica is in service (all were taken out)",
                retryable=True,
            )
        tried.add(replica)
        return replica

    def _others(self, tried: set[Replica]) -> bool:
        """Whether a replica not yet tried is in service."""
        now = time.monotonic()
        return any(r not in tried and r.in_service(now) for r in self.replicas)

    async def count_tokens(self, params: MessageCreateParams) -> int:
        return await self.replicas[0].engine.count_tokens(params)

    async def aclose(self) -> None:
        for replica in self.replicas:
            await replica.engine.aclose()


def _prefix(params: MessageCreateParams) -> int | None:
    """The request's prompt-prefix key, from its body as sent where it was kept."""
    return prefix_key(body_as_sent(params) or msgspec.json.encode(params))
