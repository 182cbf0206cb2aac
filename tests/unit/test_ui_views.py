"""What the dashboard shows, worked out from records (no server)."""

from __future__ import annotations

import json

from batchyard.services.dashboard import timeline_window
from batchyard.services.eta import UNKNOWN, Eta
from batchyard.store.records import BatchRecord, BatchRow, ResultRow, UsageRow
from batchyard.ui.views import (
    NONE,
    batch_view,
    duration,
    rate,
    result_view,
    timeline_view,
    usage_view,
)

T0 = 1_750_000_000.0


def record(**kw: object) -> BatchRecord:
    fields: dict[str, object] = {
        "seq": 1,
        "id": "msgbatch_x",
        "workspace_id": "ws",
        "processing_status": "in_progress",
        "created_at": T0,
        "expires_at": T0 + 86400,
        "cancel_initiated_at": None,
        "ended_at": None,
        "archived_at": None,
        "total": 1000,
        "processing": 600,
        "succeeded": 300,
        "errored": 100,
        "canceled": 0,
        "expired": 0,
    }
    fields.update(kw)
    return BatchRecord(**fields)  # type: ignore[arg-type]


def test_running_batch_progress_rate_and_eta() -> None:
    eta = Eta(T0 + 500, 2.0, False, "batch")
    view = batch_view(BatchRow(record(), "anthropic", None), now=T0 + 200, eta=eta)
    assert (view.done, view.percent, view.running, view.outcome) == (400, 40.0, True, "in_progress")
    # Bar segments lie end to end: succeeded 30%, then errored 10%.
    assert [(s.kind, s.x, s.width) for s in view.segments] == [
        ("succeeded", 0.0, 30.0),
        ("errored", 30.0, 10.0),
    ]
    assert view.average_rate == "2.0/s"  # 400 finished in 200 s
    assert view.recent_rate == "2.0/s"  # the rate the ETA assumes
    assert view.eta == "5 min 00 s"  # from the ETA's end, not worked out here
    assert view.elapsed == "3 min 20 s"
    assert not view.at_risk and "own" in view.rate_basis


def test_the_eta_and_its_badge_come_from_services_eta() -> None:
    late = Eta(T0 + 90_000, 0.01, True, "share")
    view = batch_view(BatchRow(record(), "anthropic", None), now=T0 + 20, eta=late)
    assert view.at_risk and view.eta == "1 d 0 h" and "share" in view.rate_basis
    assert view.ends == "2025-06-16 16:06:40 UTC"
    unknown = batch_view(BatchRow(record(), "anthropic", None), now=T0 + 20, eta=UNKNOWN)
    assert (unknown.eta, unknown.recent_rate, unknown.at_risk) == (NONE, NONE, False)


def test_ended_batches_say_what_they_came_to() -> None:
    done = record(processing_status="ended", processing=0, succeeded=900, ended_at=T0 + 90)
    assert batch_view(BatchRow(done, "anthropic", None), T0 + 999).outcome == "completed"
    view = batch_view(BatchRow(done, "anthropic", None), T0 + 999, Eta(T0, 5.0, True, "batch"))
    assert (view.eta, view.recent_rate, view.elapsed) == (NONE, NONE, "1 min 30 s")
    assert not view.at_risk
    canceled = record(processing_status="ended", cancel_initiated_at=T0 + 1, ended_at=T0 + 2)
    assert batch_view(BatchRow(canceled, "anthropic", None), T0).outcome == "canceled"
    expired = record(processing_status="ended", expired=3, ended_at=T0 + 2)
    assert batch_view(BatchRow(expired, "openai", "batch_1"), T0).outcome == "expired"


def test_nothing_finished_yet_has_no_rate() -> None:
    fresh = record(processing=1000, succeeded=0, errored=0)
    view = batch_view(BatchRow(fresh, "anthropic", None), T0 + 5, UNKNOWN)
    assert (view.average_rate, view.eta, view.segments) == (NONE, NONE, [])


def test_formatting() -> None:
    assert [duration(s) for s in (0.4, 59, 61, 3600 * 2 + 600, 86400 * 3 + 7200)] == [
        "0 s",
        "59 s",
        "1 min 01 s",
        "2 h 10 min",
        "3 d 2 h",
    ]
    assert [rate(r) for r in (1234.0, 2.25, 0.05)] == ["1,234/s", "2.2/s", "3.0/min"]


def _line(custom_id: str, result: object) -> bytes:
    return json.dumps({"custom_id": custom_id, "result": result}).encode()


def test_result_views() -> None:
    message = {
        "type": "message",
        "content": [
            {"type": "text", "text": "Hello\n  there"},
            {"type": "tool_use", "id": "t", "name": "f", "input": {}},
            {"type": "text", "text": "again"},
        ],
        "usage": {"input_tokens": 12, "output_tokens": 7},
    }
    ok = result_view(
        ResultRow("a", "succeeded", _line("a", {"type": "succeeded", "message": message}))
    )
    assert (ok.summary, ok.text) == ("Hello there again", "Hello\n  there\n\nagain")
    assert (ok.input_tokens, ok.output_tokens) == (12, 7)
    assert json.loads(ok.pretty)["custom_id"] == "a"

    error = {"type": "error", "error": {"type": "invalid_request_error", "message": "bad model"}}
    bad = result_view(ResultRow("b", "errored", _line("b", {"type": "errored", "error": error})))
    assert bad.summary == "invalid_request_error: bad model" and bad.input_tokens is None

    long = result_view(
        ResultRow(
            "c",
            "succeeded",
            _line(
                "c",
                {
                    "type": "succeeded",
                    "message": {"content": [{"type": "text", "text": "x" * 500}]},
                },
            ),
        ),
        summary_chars=20,
    )
    assert len(long.summary) == 20 and long.summary.endswith("…")
    gone = result_view(ResultRow("d", "canceled", _line("d", {"type": "canceled"})))
    assert gone.summary == "request canceled"


def test_usage_is_the_workspaces_own_summed_by_model_and_tier() -> None:
    rows = [
        UsageRow(0, "ws", "k1", "m1", "batch", 2, 10, 20),
        UsageRow(3600, "ws", "k2", "m1", "batch", 1, 5, 5),
        UsageRow(0, "ws", "k1", "m1", "standard", 1, 100, 100),
        UsageRow(0, "other", "k3", "m1", "batch", 50, 5000, 5000),
    ]
    view = usage_view(rows, "ws", 24)
    assert [(u.model, u.tier, u.requests, u.input_tokens, u.output_tokens) for u in view.lines] == [
        ("m1", "standard", 1, 100, 100),
        ("m1", "batch", 3, 15, 25),
    ]
    assert (view.requests, view.input_tokens, view.output_tokens) == (4, 115, 125)


def test_timeline_bars_scale_to_the_busiest_interval() -> None:
    ended = record(processing_status="ended", ended_at=T0 + 125)
    start, width = timeline_window(ended, now=T0 + 9999)
    assert (start, width) == (T0, 3.0)  # 125 s in 60 bars: 3 s each
    assert timeline_window(record(), now=T0 + 10)[1] == 1.0  # never under a second

    view = timeline_view([(0, 0), (30, 10), (10, 0)], T0, 2.0)
    assert [b.x for b in view.bars] == [10, 20]  # empty intervals draw nothing
    first, second = view.bars
    assert (first.succeeded, first.errored) == (42.0, 14.0)  # the tallest bar is the full height
    assert (second.succeeded, second.errored) == (14.0, 0.0)
    assert "30 succeeded, 10 errored" in first.label
    assert (view.bucket, view.peak) == ("2 s", "20/s")
    assert timeline_view([(0, 0)], T0, 1.0).bars == []


def test_timelines_are_kept_for_ended_batches_and_briefly_for_running_ones() -> None:
    import asyncio
    from types import SimpleNamespace
    from typing import cast

    from batchyard.services.dashboard import TimelineCache
    from batchyard.store.port import Store

    scans: list[str] = []

    async def timeline(batch: BatchRecord, *args: object) -> list[tuple[int, int]]:
        scans.append(batch.id)
        return [(len(scans), 0)]

    store = cast(Store, SimpleNamespace(views=SimpleNamespace(timeline=timeline)))
    cache = TimelineCache(fresh_seconds=5, entries=2)
    running, ended = record(id="run"), record(id="end", processing_status="ended", ended_at=T0)

    async def scenario() -> None:
        await cache.get(store, running, T0 + 10)
        assert (await cache.get(store, running, T0 + 14))[2] == [(1, 0)]  # still fresh
        assert (await cache.get(store, running, T0 + 16))[2] == [(2, 0)]  # rescanned
        await cache.get(store, ended, T0 + 20)
        await cache.get(store, ended, T0 + 9999)  # an ended batch's timeline is final
        assert scans == ["run", "run", "end"]
        await cache.get(store, record(id="other"), T0 + 16)  # 3 batches: "run" is dropped
        await cache.get(store, ended, T0 + 99999)
        await cache.get(store, running, T0 + 17)  # fresh, but no longer kept
        assert scans == ["run", "run", "end", "other", "run"]

    asyncio.run(scenario())


def test_workers_running_lost_and_stopped() -> None:
    from batchyard.store.records import EngineLoad, WorkerStatus
    from batchyard.ui.views import worker_views

    def w(wid: str, seen: float, stopped: float | None = None) -> WorkerStatus:
        engines = [EngineLoad("fake", 8, 8, 3), EngineLoad("vllm", 64, 10, 0)]
        return WorkerStatus(wid, "box", 7, T0, seen, stopped, 16, 1234, engines)

    now = T0 + 7200
    views = worker_views(
        [w("a", now - 2), w("b", now - 31), w("c", now - 600, now - 600), w("d", T0, T0 + 1)], now
    )
    assert [(v.id, v.state, v.seen) for v in views] == [
        ("a", "running", "2 s"),
        ("b", "not seen", "31 s"),
        ("c", "stopped", "10 min 00 s"),  # "d" stopped over an hour ago: not shown
    ]
    assert views[0].engines == ["fake 8/8, 3 waiting", "vllm 10/64"]
    assert views[2].up == "1 h 50 min"  # started to stopped
