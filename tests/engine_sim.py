"""A simulated inference server and the workers that feed it, in simulated time.

The engine has a fixed number of running seats, a first-in-first-out waiting
queue and a service time per request (vLLM's scheduler, reduced to its queue).
Each client stands for one batchyard worker with unlimited batch work: its own
`PrioritySlots`, kept full, and either an `AdmissionController` fed the engine's
load every probe interval or a fixed capacity. Used by tests/unit/test_admission.py
and bench/admission.py.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from batchyard.engines.remote.concurrency import AdmissionController
from batchyard.engines.remote.upstream_load import UpstreamLoad
from batchyard.engines.slots import PrioritySlots


class SimEngine:
    def __init__(
        self, seats: int, service: Callable[[random.Random], float], *, seed: int = 0
    ) -> None:
        self.seats = seats
        self.service = service
        self.rng = random.Random(seed)
        self.now = 0.0
        self._running: list[tuple[float, int, int]] = []  # (finish, seq, client), a heap
        self._waiting: deque[int] = deque()
        self._seq = 0

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def load(self) -> UpstreamLoad:
        return UpstreamLoad(
            running=self.running, waiting=self.waiting, kv_usage=self.running / self.seats
        )

    def metrics_text(self) -> str:
        """The load as vLLM's /metrics says it."""
        labels = '{engine="0",model_name="sim"}'
        return (
            f"vllm:num_requests_running{labels} {self.running}.0\n"
            f"vllm:num_requests_waiting{labels} {self.waiting}.0\n"
            f"vllm:kv_cache_usage_perc{labels} {self.running / self.seats}\n"
        )

    def submit(self, client: int) -> None:
        if len(self._running) < self.seats:
            self._start(client, self.now)
        else:
            self._waiting.append(client)

    def _start(self, client: int, at: float) -> None:
        self._seq += 1
        heapq.heappush(self._running, (at + self.service(self.rng), self._seq, client))

    def advance(self, to: float) -> list[int]:
        """Run to time `to`; the clients whose requests finished, in order."""
        done = []
        while self._running and self._running[0][0] <= to:
            finish, _, client = heapq.heappop(self._running)
            done.append(client)
            if self._waiting:
                self._start(self._waiting.popleft(), finish)
        self.now = to
        return done


@dataclass
class SimClient:
    """One worker: its slots, kept full from `starts_at` on, and its controller (none:
    a fixed capacity)."""

    slots: PrioritySlots
    controller: AdmissionController | None = None
    starts_at: float = 0.0
    completed: int = 0
    completed_after_warmup: int = 0
    capacities: list[int] = field(default_factory=list)


@dataclass
class SimResult:
    saturation: float
    """Mean of running / seats after the warm-up."""
    waiting: float
    """Mean waiting queue after the warm-up."""
    peak_waiting: int
    target: float
    """The controller's mean target queue after the warm-up."""
    shares: list[float]
    """Each client's share of the requests finished after the warm-up."""
    throughput: float
    """Requests finished a second after the warm-up."""


def controlled(n: int, maximum: int = 1024, **kwargs: int) -> list[SimClient]:
    clients = []
    for _ in range(n):
        slots = PrioritySlots(maximum)
        clients.append(SimClient(slots, AdmissionController(slots, maximum, **kwargs)))
    return clients


def fixed(n: int, capacity: int) -> list[SimClient]:
    return [SimClient(PrioritySlots(capacity)) for _ in range(n)]


def simulate(
    engine: SimEngine,
    clients: list[SimClient],
    *,
    seconds: float,
    warmup: float,
    probe_every: float = 0.5,
    dt: float = 0.01,
) -> SimResult:
    """Run the clients against the engine for `seconds` of simulated time; each
    controller reads the engine's load every `probe_every`, the clients out of phase."""
    n = len(clients)
    steps = round(seconds / dt)
    probe_steps = max(1, round(probe_every / dt))
    running = waiting = 0.0
    targets = 0.0
    samples = 0
    peak = 0
    for step in range(1, steps + 1):
        t = step * dt
        for c in engine.advance(t):
            client = clients[c]
            client.slots.in_use -= 1
            client.completed += 1
            if t >= warmup:
                client.completed_after_warmup += 1
        for i, client in enumerate(clients):
            if t < client.starts_at:
                continue
            if client.controller is not None and (step + i * probe_steps // n) % probe_steps == 0:
                client.controller.observe(engine.load())
                client.capacities.append(client.slots.capacity)
            while client.slots.in_use < client.slots.capacity:
                client.slots.in_use += 1
                engine.submit(i)
        if t >= warmup:
            samples += 1
            running += engine.running
            waiting += engine.waiting
            peak = max(peak, engine.waiting)
            targets += max(2.0, engine.running / 8)
    done = sum(c.completed_after_warmup for c in clients) or 1
    return SimResult(
        saturation=running / samples / engine.seats,
        waiting=waiting / samples,
        peak_waiting=peak,
        target=targets / samples,
        shares=[c.completed_after_warmup / done for c in clients],
        throughput=done / (seconds - warmup),
    )
