"""What the dashboard shows, worked out from records (no server)."""

from __future__ import annotations

import json

from batchyard.store.base import BatchRecord, UsageRow
from batchyard.store.views_sql import BatchRow, ResultRow
from batchyard.ui.views import NONE, batch_view, duration, rate, result_view, usage_view

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
    view = batch_view(BatchRow(record(), "anthropic", None), now=T0 + 200, recent_done=120)
    assert (view.done, view.percent, view.running, view.outcome) == (400, 40.0, True, "in_progress")
    # Bar segments lie end to end: succeeded 30%, then errored 10%.
    assert [(s.kind, s.x, s.width) for s in view.segments] == [
        ("succeeded", 0.0, 30.0),
        ("errored", 30.0, 10.0),
    ]
    assert view.average_rate == "2.0/s"  # 400 finished in 200 s
    assert view.recent_rate == "2.0/s"  # 120 in the last 60 s
    assert view.eta == "5 min 00 s"  # 600 left at 2/s
    assert view.elapsed == "3 min 20 s"


def test_recent_rate_drives_the_eta_and_a_young_batch_uses_its_age() -> None:
    view = batch_view(BatchRow(record(), "anthropic", None), now=T0 + 20, recent_done=400)
    assert view.recent_rate == "20/s"  # 400 in the 20 s the batch has existed
    assert view.eta == "30 s"


def test_ended_batches_say_what_they_came_to() -> None:
    done = record(processing_status="ended", processing=0, succeeded=900, ended_at=T0 + 90)
    assert batch_view(BatchRow(done, "anthropic", None), T0 + 999).outcome == "completed"
    view = batch_view(BatchRow(done, "anthropic", None), T0 + 999, recent_done=5)
    assert (view.eta, view.recent_rate, view.elapsed) == (NONE, NONE, "1 min 30 s")
    canceled = record(processing_status="ended", cancel_initiated_at=T0 + 1, ended_at=T0 + 2)
    assert batch_view(BatchRow(canceled, "anthropic", None), T0).outcome == "canceled"
    expired = record(processing_status="ended", expired=3, ended_at=T0 + 2)
    assert batch_view(BatchRow(expired, "openai", "batch_1"), T0).outcome == "expired"


def test_nothing_finished_yet_has_no_rate() -> None:
    fresh = record(processing=1000, succeeded=0, errored=0)
    view = batch_view(BatchRow(fresh, "anthropic", None), T0 + 5, recent_done=0)
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
