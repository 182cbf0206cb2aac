"""What the dashboard's templates show, worked out from store records: a batch's
progress, rates, ETA (as `services.eta` made it) and throughput chart, a result's
one-line summary, usage sums, engine load, the workers' states. Plain values only, so
the templates stay free of arithmetic."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from batchyard.engines.router import EngineRouter
from batchyard.services.eta import Eta
from batchyard.store.records import BatchRecord, BatchRow, ResultRow, UsageRow, WorkerStatus

NONE = "\N{EN DASH}"
"""Shown where there is no figure yet."""

SEGMENTS = ("succeeded", "errored", "canceled", "expired")


def utc(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    """3 s, 4 min 05 s, 2 h 10 min, 1 d 3 h."""
    if seconds is None:
        return NONE
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def rate(per_second: float | None) -> str:
    if per_second is None:
        return NONE
    if per_second >= 10:
        return f"{per_second:,.0f}/s"
    if per_second >= 1:
        return f"{per_second:.1f}/s"
    return f"{per_second * 60:.1f}/min"


@dataclass(frozen=True, slots=True)
class Segment:
    kind: str
    x: float
    width: float
    """Percent of the bar."""


@dataclass(frozen=True, slots=True)
class BatchView:
    id: str
    dialect: str
    openai_id: str | None
    status: str
    """in_progress | canceling | ended"""
    outcome: str
    """What an ended batch came to (completed, canceled, expired); the status otherwise."""
    record: BatchRecord
    done: int
    percent: float
    segments: list[Segment]
    elapsed: str
    average_rate: str
    recent_rate: str
    """The rate its ETA assumes (`services.eta`)."""
    rate_basis: str
    """Where that rate comes from, in words."""
    eta: str
    """How long until it is expected to end."""
    ends: str
    at_risk: bool
    """Not expected to finish before it expires."""
    created: str
    ended: str

    @property
    def running(self) -> bool:
        return self.status != "ended"


_BASES = {
    "batch": "its own, over the last minute",
    "share": "its share of what the deployment finished over the last minute",
    "unknown": "nothing finished lately to measure",
}


def batch_view(row: BatchRow, now: float, eta: Eta | None = None) -> BatchView:
    """`eta`: the running batch's, from `services.eta` (the dashboard makes no other)."""
    b = row.batch
    counts = {k: getattr(b, k) for k in SEGMENTS}
    done = sum(counts.values())
    total = max(b.total, 1)
    segments, x = [], 0.0
    for kind in SEGMENTS:
        width = 100.0 * counts[kind] / total
        if width:
            segments.append(Segment(kind, round(x, 3), round(width, 3)))
            x += width
    elapsed = (b.ended_at or now) - b.created_at
    worked = b.succeeded + b.errored
    average = worked / elapsed if elapsed > 0 and worked else None
    if b.ended_at is not None:
        eta = None
    return BatchView(
        id=b.id,
        dialect=row.dialect,
        openai_id=row.openai_id,
        status=b.processing_status,
        outcome=b.outcome,
        record=b,
        done=done,
        percent=round(100.0 * done / total, 1),
        segments=segments,
        elapsed=duration(elapsed),
        average_rate=rate(average),
        recent_rate=rate(eta.rate if eta else None),
        rate_basis=_BASES[eta.basis] if eta else "",
        eta=duration(eta.ends_at - now) if eta and eta.ends_at is not None else NONE,
        ends=utc(eta.ends_at) if eta else "",
        at_risk=eta.at_risk if eta else False,
        created=utc(b.created_at),
        ended=utc(b.ended_at),
    )


CHART_HEIGHT = 56.0


@dataclass(frozen=True, slots=True)
class Bar:
    x: int
    succeeded: float
    errored: float
    """Heights in the chart's units (its viewBox is 600 x 60)."""
    label: str


@dataclass(frozen=True, slots=True)
class Timeline:
    bars: list[Bar]
    bucket: str
    """How long one bar is."""
    peak: str
    """The fastest bar's rate."""


def timeline_view(counts: list[tuple[int, int]], start: float, width: float) -> Timeline:
    """Requests finished per interval, as stacked bars (succeeded below, errored above)."""
    top = max((ok + bad for ok, bad in counts), default=0) or 1
    bars = []
    for i, (ok, bad) in enumerate(counts):
        if ok + bad:
            at = utc(start + i * width)[11:19]
            bars.append(
                Bar(
                    x=i * 10,
                    succeeded=round(CHART_HEIGHT * ok / top, 2),
                    errored=round(CHART_HEIGHT * bad / top, 2),
                    label=f"{at} +{duration(width)}: {ok:,} succeeded, {bad:,} errored",
                )
            )
    peak = max((ok + bad for ok, bad in counts), default=0)
    return Timeline(bars, duration(width), rate(peak / width) if peak else NONE)


@dataclass(frozen=True, slots=True)
class ResultView:
    custom_id: str
    kind: str
    summary: str
    """The answer's first words, or the error's type and message."""
    input_tokens: int | None
    output_tokens: int | None
    pretty: str
    """The whole results line, indented."""
    text: str
    """All the answer's text blocks (succeeded results)."""


def result_view(row: ResultRow, summary_chars: int = 140) -> ResultView:
    try:
        line: dict[str, Any] = json.loads(row.line)
    except ValueError:
        line = {}
    result: dict[str, Any] = line.get("result") or {}
    text, summary = "", ""
    usage: dict[str, Any] = {}
    if row.kind == "succeeded":
        message: dict[str, Any] = result.get("message") or {}
        usage = message.get("usage") or {}
        text = "\n\n".join(
            str(block.get("text", ""))
            for block in message.get("content") or []
            if isinstance(block, dict) and block.get("type") == "text"
        )
        summary = " ".join(text.split())
        if not summary and message.get("content"):
            summary = f"({len(message['content'])} content blocks, no text)"
    elif row.kind == "errored":
        error: dict[str, Any] = (result.get("error") or {}).get("error") or {}
        summary = f"{error.get('type', 'error')}: {error.get('message', '')}".strip()
    else:
        summary = f"request {row.kind}"
    if len(summary) > summary_chars:
        summary = summary[: summary_chars - 1] + "…"
    return ResultView(
        custom_id=row.custom_id,
        kind=row.kind,
        summary=summary,
        input_tokens=usage.get("input_tokens"),
        output_tokens=usage.get("output_tokens"),
        pretty=json.dumps(line, indent=2, ensure_ascii=False) if line else row.line.decode(),
        text=text,
    )


@dataclass(slots=True)
class UsageLine:
    model: str
    tier: str
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def add(self, r: UsageRow) -> None:
        self.requests += r.requests
        self.input_tokens += r.input_tokens
        self.output_tokens += r.output_tokens
        self.cache_read_tokens += r.cache_read_input_tokens
        self.cache_write_tokens += (
            r.cache_creation_5m_input_tokens + r.cache_creation_1h_input_tokens
        )


@dataclass(slots=True)
class UsageView(UsageLine):
    hours: int = 0
    lines: list[UsageLine] = field(default_factory=list)


def usage_view(rows: list[UsageRow], workspace_id: str, hours: int) -> UsageView:
    """The workspace's usage by model and tier (batch / standard), biggest first."""
    sums: dict[tuple[str, str], UsageLine] = defaultdict(lambda: UsageLine("", ""))
    view = UsageView("", "", hours=hours)
    for r in rows:
        if r.workspace_id != workspace_id:
            continue
        line = sums[(r.model, r.service_tier)]
        line.model, line.tier = r.model, r.service_tier
        line.add(r)
        view.add(r)
    view.lines = sorted(sums.values(), key=lambda u: (-u.input_tokens - u.output_tokens, u.model))
    return view


@dataclass(frozen=True, slots=True)
class EngineView:
    name: str
    kind: str
    models: list[str]
    capacity: int
    in_use: int
    waiting: int

    @property
    def load(self) -> float:
        """Percent of the capacity in use."""
        return round(100.0 * min(self.in_use, self.capacity) / max(self.capacity, 1), 1)


_KINDS = {
    "FakeEngine": "fake (deterministic)",
    "LocalEngine": "embedded model",
    "OpenAICompatEngine": "OpenAI-compatible server",
    "AnthropicEngine": "Anthropic-compatible API",
}


def engine_views(router: EngineRouter) -> list[EngineView]:
    models: dict[int, list[str]] = defaultdict(list)
    for route in router.routes:
        models[id(route.engine)].append(route.model.id)
    return [
        EngineView(
            name=engine.name,
            kind=_KINDS.get(type(engine).__name__, type(engine).__name__),
            models=models[id(engine)],
            capacity=engine.slots.capacity,
            in_use=engine.slots.in_use,
            waiting=engine.slots.waiting,
        )
        for engine in router.engines
    ]


LOST_AFTER_SECONDS = 30.0
"""A worker not heard from for this long (six missed reports at the default 5 s) is
shown as not seen: killed, hung, or cut off from the store."""
STOPPED_SHOWN_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class WorkerView:
    id: str
    host: str
    pid: int
    state: str
    """running | stopped | not seen"""
    up: str
    seen: str
    """How long ago it last reported."""
    in_flight: int
    processed: int
    engines: list[str]


def worker_views(statuses: list[WorkerStatus], now: float) -> list[WorkerView]:
    """Running and lost workers, and those that stopped in the last hour."""
    shown = []
    for w in statuses:
        if w.stopped_at is not None and now - w.stopped_at > STOPPED_SHOWN_SECONDS:
            continue
        if w.stopped_at is not None:
            state = "stopped"
        elif now - w.seen_at > LOST_AFTER_SECONDS:
            state = "not seen"
        else:
            state = "running"
        shown.append(
            WorkerView(
                id=w.id,
                host=w.host,
                pid=w.pid,
                state=state,
                up=duration((w.stopped_at or w.seen_at) - w.started_at),
                seen=duration(now - w.seen_at),
                in_flight=w.in_flight,
                processed=w.processed,
                engines=[
                    f"{e.name} {e.in_use}/{e.capacity}"
                    + (f", {e.waiting} waiting" if e.waiting else "")
                    for e in w.engines
                ],
            )
        )
    return shown
