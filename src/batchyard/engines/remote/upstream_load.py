"""An upstream engine's own load, read from its Prometheus metrics.

vLLM, SGLang and llama-server (`--metrics`) publish how many requests they run and
how many wait for a seat, and how full their KV cache is. `parse_load` reads those
few gauges from the text format (summed over label sets: several models or data
parallel engines behind one endpoint; the KV usage is the fullest one's), and
`LoadProbe` polls the endpoints from a task of its own.

A fleet of replicas behind a router or load balancer is read at each replica: several
metrics URLs, or a `dns+http://name:port/metrics` URL whose name resolves to every
replica's address (a Kubernetes headless Service), resolved again every few seconds.
Their readings add up to the fleet's load (`combine`); a replica that does not answer
counts as no load, and only a poll where none answers gives no reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx
from yarl import URL

log = logging.getLogger("batchyard.upstream_load")

_RUNNING = ("vllm:num_requests_running", "sglang:num_running_reqs", "llamacpp:requests_processing")
_WAITING = ("vllm:num_requests_waiting", "sglang:num_queue_reqs", "llamacpp:requests_deferred")
_KV_USAGE = (
    "vllm:kv_cache_usage_perc",  # a fraction despite the name
    "vllm:gpu_cache_usage_perc",  # its name before vLLM 0.10
    "sglang:token_usage",
    "llamacpp:kv_cache_usage_ratio",
)
_PREFIX_QUERIES = ("vllm:prefix_cache_queries_total", "vllm:prefix_cache_queries")
_PREFIX_HITS = ("vllm:prefix_cache_hits_total", "vllm:prefix_cache_hits")
GIVE_UP_AFTER = 3
"""Polls in a row without a reading after which the endpoint counts as absent."""

_WANTED = frozenset((*_RUNNING, *_WAITING, *_KV_USAGE, *_PREFIX_QUERIES, *_PREFIX_HITS))


@dataclass(frozen=True, slots=True)
class UpstreamLoad:
    """One reading of an engine's load (all its requests, not only ours)."""

    running: int = 0
    """Requests the engine is generating for now."""
    waiting: int = 0
    """Requests queued inside the engine for a seat (vLLM: preempted ones too)."""
    kv_usage: float | None = None
    """Share of the KV cache in use (0..1), where the engine reports it."""
    prefix_queries: float | None = None
    """vLLM's prefix cache: prompt tokens looked up, since the engine started."""
    prefix_hits: float | None = None
    """vLLM's prefix cache: prompt tokens found, since the engine started."""
    at: float = 0.0
    """`time.monotonic()` when it was read."""

    @property
    def prefix_hit_rate(self) -> float | None:
        """Hits over queries since the engine started (compare two readings for a window)."""
        if not self.prefix_queries or self.prefix_hits is None:
            return None
        return self.prefix_hits / self.prefix_queries


def _sample(line: str) -> tuple[str, float] | None:
    """`name{labels} value [timestamp]` → (name, value); None for other lines."""
    brace = line.find("{")
    space = line.find(" ")
    if brace != -1 and (space == -1 or brace < space):
        name, rest = line[:brace], line[line.rfind("}") + 1 :]
    elif space != -1:
        name, rest = line[:space], line[space:]
    else:
        return None
    if name not in _WANTED:
        return None
    fields = rest.split()
    if not fields:
        return None
    try:
        value = float(fields[0])
    except ValueError:
        return None
    return None if math.isnan(value) else (name, value)


def parse_load(text: str, at: float = 0.0) -> UpstreamLoad | None:
    """The load in a Prometheus text exposition; None when it has neither a running nor
    a waiting gauge this module knows (not vLLM, SGLang or llama-server)."""
    sums: dict[str, float] = {}
    kv: float | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] == "#":
            continue
        sample = _sample(line)
        if sample is None:
            continue
        name, value = sample
        if name in _KV_USAGE:
            kv = value if kv is None else max(kv, value)
        else:
            sums[name] = sums.get(name, 0.0) + value

    def total(names: tuple[str, ...]) -> float | None:
        found = [sums[n] for n in names if n in sums]
        return sum(found) if found else None

    running, waiting = total(_RUNNING), total(_WAITING)
    if running is None and waiting is None:
        return None
    return UpstreamLoad(
        running=round(running or 0.0),
        waiting=round(waiting or 0.0),
        kv_usage=kv,
        prefix_queries=total(_PREFIX_QUERIES),
        prefix_hits=total(_PREFIX_HITS),
        at=at,
    )


def metrics_url_for(base_url: str) -> str:
    """The metrics endpoint beside an OpenAI-compatible `/v1` base URL."""
    base = base_url.rstrip("/")
    if base.endswith("/v1"):
        base = base[:-3]
    return f"{base}/metrics"


def combine(loads: Sequence[UpstreamLoad]) -> UpstreamLoad:
    """Replicas' readings as one engine's: requests and prefix counters added up, the KV
    usage the fullest replica's (where its next sequence would wait first)."""

    def total(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return sum(known) if known else None

    kv = [load.kv_usage for load in loads if load.kv_usage is not None]
    return UpstreamLoad(
        running=sum(load.running for load in loads),
        waiting=sum(load.waiting for load in loads),
        kv_usage=max(kv) if kv else None,
        prefix_queries=total([load.prefix_queries for load in loads]),
        prefix_hits=total([load.prefix_hits for load in loads]),
        at=max((load.at for load in loads), default=0.0),
    )


DNS_SCHEME = "dns+"
"""A metrics URL starting `dns+` names every address its host resolves to."""
RESOLVE_INTERVAL = 5.0
"""Seconds between resolutions of a `dns+` URL's name."""

Resolver = Callable[[str], Awaitable[list[str]]]
"""A host name → its addresses."""


async def resolve_all(host: str) -> list[str]:
    """Every address `host` resolves to (IPv4 and IPv6), each once, in the order given."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class LoadProbe:
    """Polls metrics endpoints every `interval` seconds (every `retry_interval` once
    `GIVE_UP_AFTER` polls in a row gave no reading) and hands each reading, or None, to
    `on_reading`: one endpoint's, or the sum of several (`combine`; see the module).

    Its task starts with the first `start()` inside a running loop (an engine is built
    before the server's loop exists) and ends with `aclose()`."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        urls: str | Sequence[str],
        on_reading: Callable[[UpstreamLoad | None], None],
        *,
        interval: float = 0.5,
        retry_interval: float = 10.0,
        timeout: float = 2.0,
        resolve: Resolver = resolve_all,
        resolve_interval: float = RESOLVE_INTERVAL,
    ) -> None:
        self.urls = (urls,) if isinstance(urls, str) else tuple(urls)
        if not self.urls:
            raise ValueError("a load probe needs at least one metrics URL")
        self.url = ", ".join(self.urls)
        """The endpoints, for messages."""
        self.interval = interval
        self.retry_interval = retry_interval
        self.last: UpstreamLoad | None = None
        """The latest reading (None until one came)."""
        self.readings: dict[str, UpstreamLoad | None] = {}
        """Each endpoint's latest reading (None: it gave none), by the URL read."""
        self.failure: str | None = None
        """Why the latest poll gave no reading (None after a reading)."""
        self.failures = 0
        """Polls in a row that gave no reading."""
        self._client = client
        self._on_reading = on_reading
        self._timeout = timeout
        self._resolve = resolve
        self._resolve_interval = resolve_interval
        self._resolved: dict[str, tuple[float, list[str]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._told_error = False

    def start(self) -> None:
        """Start polling (once per event loop); call it from inside the loop. A no-op
        after `aclose()`: the client it polls may be closed too."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        if self._task is not None and not self._task.done() and self._task.get_loop() is loop:
            return
        self._task = loop.create_task(self._run(), name=f"load-probe {self.url}")

    async def targets(self) -> list[str]:
        """The URLs to read now: each `dns+` URL as one per address its name resolves
        to (resolved again after `resolve_interval`; the last answer kept if that fails)."""
        found: list[str] = []
        for url in self.urls:
            if not url.startswith(DNS_SCHEME):
                found.append(url)
                continue
            parsed = URL(url.removeprefix(DNS_SCHEME))
            at, addresses = self._resolved.get(url, (-math.inf, []))
            if time.monotonic() - at >= self._resolve_interval:
                try:
                    addresses = await self._resolve(parsed.host or "")
                    self._resolved[url] = (time.monotonic(), addresses)
                except OSError as exc:
                    log.debug("resolving %s failed (%r)", parsed.host, exc)
            found += [str(parsed.with_host(address)) for address in addresses]
        return found

    async def read(self) -> UpstreamLoad | None:
        """One poll of every endpoint: their reading (summed), or None when none gave
        one (`failure` says why)."""
        targets = await self.targets()
        if not targets:
            self.failure = f"{self.url} resolves to no address"
            return None
        results = await asyncio.gather(*(self._read_one(url) for url in targets))
        self.readings = {url: load for url, (load, _) in zip(targets, results, strict=True)}
        loads = [load for load, _ in results if load is not None]
        if not loads:
            self.failure = "; ".join(
                f"{url}: {why}" if len(targets) > 1 else str(why)
                for url, (_, why) in zip(targets, results, strict=True)
            )
            return None
        load = loads[0] if len(targets) == 1 else combine(loads)
        self.last, self.failure = load, None
        return load

    async def _read_one(self, url: str) -> tuple[UpstreamLoad | None, str | None]:
        """One endpoint's reading, or None and why not."""
        try:
            response = await self._client.get(url, timeout=self._timeout)
        except httpx.HTTPError as exc:
            return None, f"cannot reach it ({exc!r})"
        if response.status_code != 200:
            return None, f"it answered {response.status_code}"
        load = parse_load(response.text, time.monotonic())
        return (load, None) if load is not None else (None, "it has no running or waiting gauge")

    async def _poll(self) -> UpstreamLoad | None:
        """`read()`, with any failure of its own a poll without a reading: an error
        must not end the polling (capacity would freeze, with no fallback)."""
        try:
            return await self.read()
        except Exception as exc:
            self.failure = f"reading it failed ({exc!r})"
            level = logging.DEBUG if self._told_error else logging.WARNING
            self._told_error = True
            log.log(level, "polling %s failed", self.url, exc_info=True)
            return None

    async def _run(self) -> None:
        while True:
            load = await self._poll()
            self.failures = 0 if load is not None else self.failures + 1
            try:
                self._on_reading(load)
            except Exception:  # a bug in the consumer must not end the polling
                log.exception("handling a load reading of %s failed", self.url)
            gave_up = self.failures >= GIVE_UP_AFTER
            await asyncio.sleep(self.retry_interval if gave_up else self.interval)

    async def aclose(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is None or task.done():
            return
        task.cancel()
        if task.get_loop() is asyncio.get_running_loop():
            with contextlib.suppress(asyncio.CancelledError):
                await task
