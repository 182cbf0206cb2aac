"""How many requests a remote engine is sent at once: from its own load, or adapted.

`AdmissionController` sets the engine's `slots` capacity from the engine's metrics
(`engines/remote/upstream_load.py`) so that its running set stays full and its waiting
queue short: a target of `max(2, running / 8)` requests queued inside the engine,
enough that a finished sequence is replaced at the next step, few enough that a
new (interactive) request does not wait behind a long queue. On each reading:

- slow start (from 8): while all our slots are in use, the queue is under the
  target, the KV cache not full (>= 0.95 counts as full) and no more than the target
  of ours are still on their way in (held, but neither running nor queued yet), double,
  up to `SLOW_START_LIMIT`: a doubling that finds the engine's seats all taken queues
  as many requests as we held, and they stay queued for a whole wave (a 64-request
  batch against 32 seats: half of it waited while the first half ran).
- then, while all our slots are in use or the queue is above the target:
  `capacity = (ours + step) * (running + target) / (running + waiting)`, at most
  x1.25 a reading. Every client of the engine scales by the same factor, so
  together they keep it holding its running set plus the target; `step`
  (max(1, target / 8)) is the same for every client, which evens their shares out
  (AIMD's additive step), so a worker that starts later is not starved. While a
  cut drains (we hold more than the capacity) readings do not cut again, as the
  cut's effect is not in them yet (cutting on each would go far below the level);
  nor does it grow while more than the target of ours are on their way in.
  Requests on their way are never a reason to cut: only the engine's own queue is.
- otherwise (idle slots, a short queue): hold.

Several workers (processes) sharing one engine each read the same signal and set
only their own capacity, so none needs a hand-split `--capacity`.

`EngineAdmission` is what an engine holds: the controller and its probe in the
`metrics` mode, falling back to AIMD on 429s and latency per output token
(`remote.AdaptiveLimit`: latency alone never cuts below where it started) while the
metrics endpoint is absent or its probe fails; AIMD alone in the `aimd` mode; a fixed
capacity in the `fixed` mode.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import httpx

from batchyard.engines.config import AdmissionMode
from batchyard.engines.remote.errors import AdaptiveLimit
from batchyard.engines.remote.upstream_load import GIVE_UP_AFTER, LoadProbe, UpstreamLoad
from batchyard.engines.slots import PrioritySlots

log = logging.getLogger("batchyard.admission")

KV_FULL = 0.95
"""KV cache usage at which the engine counts as full whatever its queue."""
SLOW_START_LIMIT = 32
"""The capacity at which slow start ends and growth goes on at most x1.25 a reading."""
MAX_GROWTH = 1.25
"""The most one reading multiplies the capacity by, past slow start: a reading taken
between one request's end and the next one's arrival shows an engine emptier than it
is (short requests, a slow network), and must not make the capacity jump."""


class AdmissionController:
    """Sets `slots.capacity` from readings of the engine's load (see the module)."""

    def __init__(
        self,
        slots: PrioritySlots,
        maximum: int,
        *,
        target_queue: int | None = None,
        start: int = 8,
    ) -> None:
        self.slots = slots
        self.maximum = max(1, maximum)
        self.target_queue = target_queue
        """Requests to keep queued inside the engine (None: max(2, running / 8))."""
        self.slow_start = True
        slots.set_capacity(min(start, self.maximum))
        self._level = float(slots.capacity)

    def target(self, load: UpstreamLoad) -> float:
        if self.target_queue is not None:
            return float(self.target_queue)
        return max(2.0, load.running / 8)

    def observe(self, load: UpstreamLoad) -> int:
        """Adjust the capacity to one reading; returns the new capacity."""
        capacity, used = self.slots.capacity, self.slots.in_use
        target = self.target(load)
        waiting = load.waiting
        # What we hold that the engine shows neither running nor queued is on its way
        # (its HTTP front end, tokenizing, the network) or just finished and not yet
        # replaced: no reason to cut, but no sign that more would run either.
        in_transit = max(0, used - load.running - waiting)
        full = load.kv_usage is not None and load.kv_usage >= KV_FULL
        if waiting > target or full:
            self.slow_start = False
        if round(self._level) != capacity:  # set by someone else (AIMD on a 429)
            self._level = float(capacity)
        new = self._level
        if used >= capacity or waiting > target:
            if self.slow_start:
                if in_transit <= target:
                    new = min(2.0 * capacity, max(float(capacity), SLOW_START_LIMIT))
                if new >= SLOW_START_LIMIT:
                    self.slow_start = False
            elif load.running + waiting > 0:
                # our share of what the engine should hold, plus an equal step for
                # every client (which evens the shares out)
                ratio = min(MAX_GROWTH, (load.running + target) / (load.running + waiting))
                if ratio < 1.0 and used > capacity:
                    pass  # the last cut still drains: its effect is not in the reading yet
                elif ratio >= 1.0 and in_transit > target:
                    pass  # ours on their way in will show whether there is room
                else:
                    new = (self._level + max(1.0, target / 8)) * ratio
        self._level = max(1.0, min(float(self.maximum), new))
        capacity_now = round(self._level)
        if capacity_now != capacity:
            self.slots.set_capacity(capacity_now)
        return capacity_now


class EngineAdmission:
    """An engine's concurrency policy: `metrics` (falls back to AIMD on 429s and
    latency while the metrics endpoint is absent), `aimd`, or `fixed`."""

    def __init__(
        self,
        slots: PrioritySlots,
        maximum: int,
        *,
        mode: AdmissionMode,
        name: str,
        client: httpx.AsyncClient | None = None,
        metrics_url: str | Sequence[str] | None = None,
        interval: float = 0.5,
        target_queue: int | None = None,
        latency_aware: bool = True,
    ) -> None:
        self.slots = slots
        self.maximum = maximum
        self.mode = mode
        self.name = name
        self.controller: AdmissionController | None = None
        self.adaptive: AdaptiveLimit | None = None
        self.probe: LoadProbe | None = None
        self.fallen_back = False
        """metrics mode: whether AIMD holds the capacity now (no metrics to read)."""
        self._told = False
        self._closed = False
        if mode == "fixed":
            slots.set_capacity(maximum)
        elif mode == "aimd":
            self.adaptive = AdaptiveLimit(slots, maximum, latency_aware=latency_aware)
        else:
            self.controller = AdmissionController(slots, maximum, target_queue=target_queue)
            self.adaptive = AdaptiveLimit(
                slots, maximum, latency_aware=latency_aware, start=slots.capacity
            )
        if client is not None and metrics_url:
            # in the aimd and fixed modes a probe (when a metrics_url is given) only
            # reads, for the dashboard and /metrics
            self.probe = LoadProbe(client, metrics_url, self._on_reading, interval=interval)

    @property
    def load(self) -> UpstreamLoad | None:
        """The engine's latest load reading, if it is probed and answered."""
        return self.probe.last if self.probe is not None else None

    @property
    def driven_by(self) -> str:
        """What sets the capacity now: metrics, aimd or fixed."""
        if self.mode == "metrics" and self.fallen_back:
            return "aimd"
        return self.mode

    def start(self) -> None:
        """Start the probe (from inside the running loop, on the engine's first call;
        after `aclose()`, nothing)."""
        if self.probe is not None and not self._closed:
            self.probe.start()

    def _on_reading(self, load: UpstreamLoad | None) -> None:
        if self.controller is None or self.probe is None:
            return
        if load is not None:
            if self.fallen_back:
                self.fallen_back = False
                self.controller.slow_start = False
                log.info("%s: reading %s again; admission follows it", self.name, self.probe.url)
            self.controller.observe(load)
            return
        if self.fallen_back or (
            self.probe.last is not None and self.probe.failures < GIVE_UP_AFTER
        ):
            return  # a poll missed now and then changes nothing
        self.fallen_back = True
        assert self.adaptive is not None
        if self.probe.last is not None:  # else AIMD is still in slow start, where it began
            self.adaptive.resume_from(self.slots.capacity)
        level = logging.DEBUG if self._told else logging.WARNING
        self._told = True
        log.log(
            level,
            "%s: no load metrics at %s (%s); concurrency adapts to 429s and latency instead"
            " (up to %d)",
            self.name,
            self.probe.url,
            self.probe.failure,
            self.maximum,
        )

    def on_success(self, elapsed: float, output_tokens: int | None = None) -> None:
        """A call that took `elapsed` seconds for `output_tokens` of answer (None: not
        known): the latency AIMD judges is per token, as a call's follows its length."""
        if self.adaptive is None:
            return
        if self.driven_by == "aimd":
            self.adaptive.on_success(elapsed, output_tokens)
        else:  # keep its latency figures current, but leave the capacity to the metrics
            self.adaptive.record(elapsed, output_tokens)

    async def on_rate_limited(self) -> None:
        """A 429 (from a gateway in front of the engine, say): shrink as AIMD does."""
        if self.adaptive is None:
            return
        if self.driven_by != "aimd":
            self.adaptive.resume_from(self.slots.capacity)
        await self.adaptive.on_rate_limited()

    async def aclose(self) -> None:
        self._closed = True
        if self.probe is not None:
            await self.probe.aclose()
