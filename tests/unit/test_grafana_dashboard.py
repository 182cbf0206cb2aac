"""docs/grafana/batchyard.json asks Prometheus only for metrics and labels that
batchyard serves (a renamed metric or label fails here, not on an operator's wall)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

from batchyard.metrics import Metrics, _EngineCollector

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "batchyard.json"
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}


def served() -> dict[str, tuple[str, ...]]:
    """Every series name batchyard exposes -> the labels it carries."""
    series: dict[str, tuple[str, ...]] = {}
    for metric in vars(Metrics()).values():
        if isinstance(metric, MetricWrapperBase):
            assert metric._type is not None
            for suffix in SUFFIXES[metric._type]:
                labels = metric._labelnames + (("le",) if suffix == "_bucket" else ())
                series[metric._name + suffix] = labels
    for family in _EngineCollector([]).collect():  # read at scrape time, per engine
        names: tuple[str, ...] = family._labelnames  # type: ignore[attr-defined]
        series[family.name] = names
    return series


def test_every_query_names_served_series_and_labels() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    series = served()
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    used: set[str] = set()
    for expr in exprs:
        names = re.findall(r"\bbatchyard_\w+", expr)
        assert names, expr
        for name in names:
            assert name in series, f"{name} is not served ({expr})"
            used.add(name)
        for group in re.findall(r"by \(([^)]*)\)", expr):
            for label in (x.strip() for x in group.split(",")):
                # `instance` is the scrape target's, added by Prometheus.
                assert label == "instance" or any(label in series[n] for n in names), (label, expr)
    # Every family has a panel.
    families = {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in series}
    assert families == {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in used}
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}" and panel["gridPos"]["w"] > 0
