"""ETAs from measured throughput (services.eta), without a store: rates, shares,
unknown, at risk."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping

import pytest

from batchyard.services import eta as eta_module
from batchyard.services.eta import (
    UNKNOWN,
    WINDOW_SECONDS,
    Eta,
    Samples,
    ShareModel,
    estimate,
    fair_shares,
    shared_finishes,
)
from batchyard.store.records import BatchRecord

T0 = 1_750_000_000.0
DAY = 86400.0


def batch(
    name: str, done: int = 0, total: int = 1000, workspace: str = "ws", **kw: object
) -> BatchRecord:
    record = BatchRecord(
        seq=hash(name) & 0xFFFF,
        id=f"msgbatch_{name}",
        workspace_id=workspace,
        processing_status="in_progress",
        created_at=T0,
        expires_at=T0 + DAY,
        cancel_initiated_at=None,
        ended_at=None,
        archived_at=None,
        total=total,
        processing=total - done,
        succeeded=done,
        errored=0,
        canceled=0,
        expired=0,
    )
    return dataclasses.replace(record, **kw)  # type: ignore[arg-type]


def moved(b: BatchRecord, done: int) -> BatchRecord:
    """`b` with `done` finished (a tenth of them errored)."""
    return dataclasses.replace(
        b, processing=b.total - done, succeeded=done - done // 10, errored=done // 10
    )


def test_a_running_batch_goes_by_its_own_recent_rate_not_its_lifetime_average() -> None:
    samples = Samples()
    a = batch("a", total=2000)
    # It waited 10 minutes in the queue, then started: 10 requests/s.
    samples.add(T0 + 600, [a])
    for s in range(2, 31, 2):
        samples.add(T0 + 600 + s, [moved(a, 10 * s)])
    now = T0 + 631
    current = moved(a, 310)
    eta = estimate(current, samples, now)
    assert eta is not None and eta.basis == "batch"
    assert eta.rate == pytest.approx(10.0, rel=0.05)  # not 310 / 631 s
    assert eta.ends_at == pytest.approx(now + 1690 / 10.0, rel=0.05)
    assert not eta.at_risk


def test_the_rate_is_the_last_minute_s() -> None:
    samples = Samples()
    a = batch("a", total=100_000)
    done = 0
    for s in range(0, 301, 5):  # 20/s for 4 minutes, then 5/s
        samples.add(T0 + s, [moved(a, done)])
        done += 100 if s < 240 else 25
    eta = estimate(moved(a, done - 25), samples, T0 + 300)
    assert eta is not None and eta.rate == pytest.approx(5.0, rel=0.1)


def test_a_batch_not_started_gets_its_share_of_the_deployment_s_rate() -> None:
    samples = Samples()
    a, b = batch("a", total=10_000), batch("b", total=10_000, workspace="other")
    samples.add(T0, [a])
    samples.add(T0 + 10, [moved(a, 200)])  # the deployment: 20/s, all on `a`
    fresh = batch("c", total=100)  # in `a`'s workspace, nothing finished yet
    samples.add(T0 + 10.5, [moved(a, 210), fresh, b])
    eta = estimate(fresh, samples, T0 + 11)
    assert eta is not None and eta.basis == "share"
    # Two workspaces with work: 10/s each; `ws` has two batches: 5/s for `c`.
    assert eta.rate == pytest.approx(5.0, rel=0.05)
    assert eta.ends_at == pytest.approx(T0 + 11 + 100 / 5.0, rel=0.01)


def test_shares_pass_on_as_batches_end() -> None:
    # 30/s over three batches of one workspace: each 10/s until the small one ends
    # after 1 s, then 15/s each.
    ends = shared_finishes({"s": ("w", 10), "m": ("w", 100), "l": ("w", 400)}, 30.0)
    assert ends["s"] == pytest.approx(1.0)
    assert ends["m"] == pytest.approx(1.0 + 90 / 15)
    assert ends["l"] == pytest.approx(7.0 + (400 - 10 - 90) / 30)
    # Workspaces first: one batch alone in its workspace gets half, not a third.
    ends = shared_finishes({"x": ("w1", 100), "y": ("w2", 100), "z": ("w2", 100)}, 20.0)
    assert ends["x"] == pytest.approx(10.0)
    assert ends["y"] == pytest.approx(ends["z"]) and ends["y"] > ends["x"]
    assert shared_finishes({"done": ("w", 0)}, 5.0) == {"done": 0.0}


def test_unknown_when_nothing_finished_lately_anywhere() -> None:
    samples = Samples()
    a = batch("a")
    assert estimate(a, samples, T0) == UNKNOWN  # no sample at all
    samples.add(T0, [a])
    assert estimate(a, samples, T0 + 5) == UNKNOWN  # one sample: no rate yet
    samples.add(T0 + 10, [a])
    samples.add(T0 + 20, [a])
    assert estimate(a, samples, T0 + 25) == UNKNOWN  # stalled: nothing finished
    # Long enough ago, it does not count as recent.
    samples = Samples()
    samples.add(T0, [a])
    samples.add(T0 + 30, [moved(a, 300)])
    samples.add(T0 + 1000, [moved(a, 300)])
    assert estimate(moved(a, 300), samples, T0 + 1000).basis == "unknown"  # type: ignore[union-attr]


def test_finishes_of_batches_that_ended_count_in_the_deployment_rate() -> None:
    samples = Samples()
    a = batch("a", total=100)
    samples.add(T0, [a])
    ended = dataclasses.replace(moved(a, 100), processing_status="ended", ended_at=T0 + 9)
    waiting = batch("w", total=50)
    samples.add(T0 + 10, [waiting], ended=[ended])
    assert samples.deployment_rate(T0 + 10) == pytest.approx(10.0)
    eta = estimate(waiting, samples, T0 + 10)
    assert eta is not None and eta.basis == "share" and eta.rate == pytest.approx(10.0)


def test_queueing_before_a_batch_started_is_not_in_its_rate() -> None:
    samples = Samples()
    a = batch("a", total=1000)
    for s in range(0, 41, 2):  # queued for 30 s, then 10/s
        samples.add(T0 + s, [moved(a, max(0, 10 * (s - 30)))])
    eta = estimate(moved(a, 100), samples, T0 + 40)
    assert eta is not None and eta.basis == "batch"
    assert eta.rate == pytest.approx(10.0, rel=0.25)  # not 100 / 40 s


def test_at_risk_when_the_estimated_end_is_after_expiry() -> None:
    samples = Samples()
    a = batch("a", total=100_000, created_at=T0, expires_at=T0 + DAY)
    now = T0 + 20 * 3600
    samples.add(now - 60, [moved(a, 50_000)])
    samples.add(now, [moved(a, 50_600)])  # 10/s; 49,400 left: ~82 min, 4 h to go
    eta = estimate(moved(a, 50_600), samples, now)
    assert eta is not None and not eta.at_risk
    samples = Samples()
    samples.add(now - 60, [moved(a, 50_000)])
    samples.add(now, [moved(a, 50_120)])  # 2/s: ~6.9 h, after expiry
    eta = estimate(moved(a, 50_120), samples, now)
    assert eta is not None and eta.at_risk
    assert eta.ends_at is not None and eta.ends_at > a.expires_at


def test_the_margin_is_small_and_scales_with_the_window() -> None:
    samples = Samples()
    a = batch("a", total=1000, created_at=T0, expires_at=T0 + 100)  # a 100 s window
    samples.add(T0, [a])
    samples.add(T0 + 10, [moved(a, 100)])  # 10/s: 900 left, ends at T0 + 100
    eta = estimate(moved(a, 100), samples, T0 + 10)
    assert eta is not None and eta.at_risk  # within 5 s (5%) of expiry
    samples = Samples()
    samples.add(T0, [a])
    samples.add(T0 + 10, [moved(a, 120)])  # 12/s: ends at ~T0 + 83
    eta = estimate(moved(a, 120), samples, T0 + 10)
    assert eta is not None and not eta.at_risk


def test_ended_batches_have_no_eta_and_drained_ones_end_now() -> None:
    samples = Samples()
    ended = batch("e", done=1000, processing_status="ended", ended_at=T0)
    assert estimate(ended, samples, T0) is None
    drained = batch("d", done=1000)
    eta = estimate(drained, samples, T0 + 1)
    assert eta is not None and eta.ends_at == T0 + 1 and not eta.at_risk


def test_samples_stay_few() -> None:
    samples = Samples()
    a = batch("a", total=100_000)
    for s in range(0, 3600, 2):
        samples.add(T0 + s, [moved(a, s)])
    assert len(samples._samples) <= 32  # the last minute's, and one base before it


def test_a_batch_joined_by_another_workspace_s_slows_down_at_once() -> None:
    samples = Samples()
    a = batch("a", total=10_000)
    for s in range(0, 31, 2):  # alone: 20/s
        samples.add(T0 + s, [moved(a, 20 * s)])
    b = batch("b", total=10_000, workspace="other")
    samples.add(T0 + 32, [moved(a, 640), b])  # now it has half the engines
    eta = estimate(moved(a, 640), samples, T0 + 32)
    assert eta is not None and eta.basis == "batch"
    mean_share = (16 * 1.0 + 0.5) / 17  # the samples since it started, the last one shared
    assert eta.rate == pytest.approx(20.0 * 0.5 / mean_share, rel=0.01)
    assert eta.rate is not None and eta.rate < 11.0  # not 20/s for another minute


def simulated(remaining: Mapping[str, tuple[str, int]], rate: float) -> dict[str, float]:
    """The share model followed event by event (each batch's end), as it was first
    written: the reference for `shared_finishes`' water-filling."""
    left = {i: float(n) for i, (_, n) in remaining.items() if n > 0}
    ends = {i: 0.0 for i, (_, n) in remaining.items() if n <= 0}
    t = 0.0
    while left:
        shares = fair_shares({i: (remaining[i][0], 1) for i in left})
        step = min(n / (rate * shares[i]) for i, n in left.items())
        t += step
        for i in list(left):
            left[i] -= rate * shares[i] * step
            if left[i] <= 1e-9 * max(1.0, rate * shares[i]):
                ends[i] = t
                del left[i]
    return ends


def test_the_water_filling_gives_what_following_every_end_gives() -> None:
    rng = random.Random(7)
    for case in range(40):
        spaces = [f"w{k}" for k in range(rng.randint(1, 6))]
        remaining = {
            f"b{i}": (rng.choice(spaces), rng.choice([0, 1, 5, 5, 40, rng.randint(1, 5000)]))
            for i in range(rng.randint(1, 60))
        }
        rate = rng.uniform(0.5, 200.0)
        found, expected = shared_finishes(remaining, rate), simulated(remaining, rate)
        assert found.keys() == expected.keys(), case
        for i, seconds in expected.items():
            assert found[i] == pytest.approx(seconds, rel=1e-9, abs=1e-9), (case, i)


def many_waiting(n: int) -> tuple[Samples, BatchRecord, list[BatchRecord]]:
    """`n` batches not started in 10 workspaces, behind one running at 20/s."""
    running = batch("running", total=100_000, workspace="w0")
    waiting = [batch(f"q{i}", total=10 * (i % 97 + 1), workspace=f"w{i % 10}") for i in range(n)]
    samples = Samples()
    samples.add(T0, [running, *waiting])
    samples.add(T0 + 10, [moved(running, 200), *waiting])
    return samples, moved(running, 200), waiting


def test_thousands_of_open_batches_share_one_model_per_sample(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every open batch's ETA (as the metrics' `at_risk` asks them) builds the share
    model once for the sample, not once (or a round of every batch) per batch."""
    built: list[int] = []

    class Counted(ShareModel):
        def __init__(self, remaining: Mapping[str, tuple[str, int]]) -> None:
            built.append(len(remaining))
            super().__init__(remaining)

    def no_rounds(remaining: Mapping[str, tuple[str, int]]) -> dict[str, float]:
        raise AssertionError("the shares were worked out again for an ETA")

    monkeypatch.setattr(eta_module, "ShareModel", Counted)
    samples, running, waiting = many_waiting(2000)
    monkeypatch.setattr(eta_module, "fair_shares", no_rounds)  # only `add` may share
    etas: dict[str, Eta | None] = {}
    for _ in range(2):  # a second round (the next list page, scrape): nothing rebuilt
        etas = {b.id: estimate(b, samples, T0 + 10) for b in [running, *waiting]}
    assert built == [2001]
    remaining = {b.id: (b.workspace_id, b.processing) for b in [running, *waiting]}
    expected = ShareModel(remaining)
    for b in waiting:
        found = etas[b.id]
        assert found is not None and found.basis == "share"
        seconds = expected.work_until(b.id, b.workspace_id, b.processing) / 20.0
        assert found.ends_at == pytest.approx(T0 + 10 + seconds)
    # A batch's fresh record that differs from the sample's is answered from it too.
    ahead = moved(waiting[0], 3)
    found = estimate(ahead, samples, T0 + 10)
    fresh = {**remaining, ahead.id: (ahead.workspace_id, ahead.processing)}
    assert found is not None and found.ends_at == pytest.approx(
        T0 + 10 + shared_finishes(fresh, 20.0)[ahead.id]
    )
    monkeypatch.setattr(eta_module, "fair_shares", fair_shares)
    built.clear()  # (`shared_finishes` above built one)
    samples.add(T0 + 12, [moved(running, 240), *waiting])  # a new sample: one new model
    estimate(waiting[1], samples, T0 + 12)
    estimate(waiting[2], samples, T0 + 12)
    assert built == [2001]


def test_a_batch_not_moving_for_a_window_falls_back_to_its_share() -> None:
    """Claims keep to one prefix group for a run: a batch can stop while others move.
    Its own rate decays while it waits (the window's average); after a whole window
    without a finish it gets its share of the deployment's rate, not a stale rate."""
    samples = Samples()
    a, b = batch("a", total=10_000), batch("b", total=100_000, workspace="other")
    for s in range(0, 21, 2):  # both at 10/s for 20 s; then `a` stops, `b` goes on
        samples.add(T0 + s, [moved(a, 10 * s), moved(b, 10 * s)])
    for s in range(22, 51, 2):
        samples.add(T0 + s, [moved(a, 200), moved(b, 10 * s)])
    waiting = estimate(moved(a, 200), samples, T0 + 50)
    assert waiting is not None and waiting.basis == "batch"
    assert waiting.rate is not None and waiting.rate < 10.0 * 0.5
    for s in range(52, 20 + int(WINDOW_SECONDS) + 5, 2):
        samples.add(T0 + s, [moved(a, 200), moved(b, 10 * s)])
    now = T0 + 20 + WINDOW_SECONDS + 3
    stale = estimate(moved(a, 200), samples, now)
    assert stale is not None and stale.basis == "share"
    assert stale.rate == pytest.approx(10.0 / 2, rel=0.05)  # half of `b`'s 10/s
