"""The design article's four panels, as the time series the report draws, with Grafana's definitions.

Each panel names the panel of the generated *LLM overview* dashboard (:mod:`llmmetrics.stack.dashboards`)
it reproduces, and takes its threshold from the same :class:`~llmmetrics.stack.options.StackOptions` the
dashboards and alert rules are generated from (``options.py`` needs nothing from the ``stack`` extra): the
5 % error-rate line is ``error_rate_threshold`` and the latency line ``latency_slo_seconds``, so the report
draws the line an alert fires at. The differences are only what records allow and metrics do not:

- a bucket is the window (Grafana's ``$__rate_interval`` / ``5m``), see :mod:`.buckets`;
- p95 is a quantile of the calls' own latencies (within 1 %), not interpolated inside histogram buckets;
- the average cost is over the *priced* calls, with the unpriced ones counted beside it: the metric
  ``llm_cost_usd_total`` has no value for them, so the Grafana stat divides by every call instead.

>>> [panel.title for panel in PANELS]
['Requests per minute by model', 'Error rate', 'Average cost per request', 'p95 latency by model']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timezone

from ..stack.options import StackOptions
from .buckets import ModelStats, TimeBuckets, format_width

__all__ = ["PANELS", "Panel", "PanelData", "Series", "panel_data"]


@dataclasses.dataclass(frozen=True)
class Series:
    name: str
    values: list[float | None]


@dataclasses.dataclass(frozen=True)
class Panel:
    """What a panel shows and how it is read; ``grafana_title`` is the overview dashboard's panel."""

    key: str
    title: str
    description: str
    grafana_title: str
    #: ``per_minute``, ``percent``, ``usd`` or ``seconds``: how values and the axis are written
    unit: str
    stacked: bool
    series: Callable[[TimeBuckets, list[str]], list[Series]]
    #: the dashed line: its value in the panel's unit and its legend, from the stack's options
    threshold: Callable[[StackOptions], tuple[float, str]] | None = None


@dataclasses.dataclass(frozen=True)
class PanelData:
    """One panel ready to draw: bucket start labels, the series, the threshold and a line saying how to read it."""

    panel: Panel
    labels: list[str]
    series: list[Series]
    threshold: float | None
    threshold_label: str
    note: str

    @property
    def points(self) -> int:
        """Values drawn (not None) over every series."""
        return sum(value is not None for series in self.series for value in series.values)


def _total(bucket: dict[str, ModelStats]) -> ModelStats:
    total = ModelStats()
    for stats in bucket.values():
        total.merge(stats)
    return total


def _requests_per_minute(buckets: TimeBuckets, models: list[str]) -> list[Series]:
    minutes = buckets.width_seconds / 60
    return [Series(model, [(buckets.buckets[i][model].calls / minutes
                            if i in buckets.buckets and model in buckets.buckets[i] else 0.0)
                           for i in buckets.indices()]) for model in models]


def _ratio(buckets: TimeBuckets, value: Callable[[ModelStats], float | None]) -> list[float | None]:
    """``value`` of each bucket's calls over every model; None for an empty bucket (a gap, not a zero)."""
    return [value(_total(buckets.buckets[i])) if i in buckets.buckets else None for i in buckets.indices()]


def _error_rate(buckets: TimeBuckets, models: list[str]) -> list[Series]:
    return [Series("error rate", _ratio(buckets, lambda s: 100.0 * s.errors / s.calls if s.calls else None))]


def _average_cost(buckets: TimeBuckets, models: list[str]) -> list[Series]:
    return [Series("per priced call", _ratio(buckets, lambda s: s.cost.value / s.cost.count if s.cost.count else None))]


def _p95_latency(buckets: TimeBuckets, models: list[str]) -> list[Series]:
    def p95(index: int, model: str) -> float | None:
        stats = buckets.buckets.get(index, {}).get(model)
        value = stats.latency.quantile(0.95) if stats is not None else None
        return None if value is None else value / 1000.0

    return [Series(model, [p95(i, model) for i in buckets.indices()]) for model in models]


PANELS: tuple[Panel, ...] = (
    Panel("requests", "Requests per minute by model",
          "LLM API calls per minute, successes and failures, by requested model (stacked: the top is all calls).",
          grafana_title="Requests per minute by model", unit="per_minute", stacked=True, series=_requests_per_minute),
    Panel("errors", "Error rate",
          "Failed calls / all calls in each bucket; the dashed line is the LLMHighErrorRate alert's threshold.",
          grafana_title="Error ratio (5m)", unit="percent", stacked=False, series=_error_rate,
          threshold=lambda o: (100.0 * o.error_rate_threshold, f"{o.error_rate_threshold:.0%} threshold")),
    Panel("cost", "Average cost per request",
          "Spend of the priced calls / priced calls in each bucket (USD, from the price table); calls without a "
          "price are counted apart below, never as $0.",
          grafana_title="Average cost per request", unit="usd", stacked=False, series=_average_cost),
    Panel("latency", "p95 latency by model",
          "95th percentile call duration by model, successes and failures; the dashed line is the latency SLO.",
          grafana_title="p95 latency by model", unit="seconds", stacked=False, series=_p95_latency,
          threshold=lambda o: (o.latency_slo_seconds, f"SLO {o.latency_slo_seconds:g} s")),
)


def _labels(buckets: TimeBuckets) -> list[str]:
    indices = list(buckets.indices())
    if not indices:
        return []
    span_s = (indices[-1] - indices[0] + 1) * buckets.width_seconds
    fmt = "%H:%M:%S" if buckets.width_seconds < 60 else "%H:%M"
    if span_s > 86400:
        fmt = "%m-%d %H:%M"
    return [datetime.fromtimestamp(buckets.start_ns(i) / 1e9, timezone.utc).strftime(fmt) for i in indices]


def panel_data(buckets: TimeBuckets, options: StackOptions, *, unpriced: int) -> list[PanelData]:
    """Every panel of :data:`PANELS` computed from ``buckets`` (models by calls, most first)."""
    buckets.settle()
    models = sorted(buckets.models, key=lambda m: (-buckets.models[m], m))
    labels = _labels(buckets)
    width = format_width(buckets.width_seconds)
    out = []
    for panel in PANELS:
        note = f"{width} buckets"
        if panel.key == "cost" and unpriced:
            note += f"; {unpriced:,} unpriced call{'s' if unpriced != 1 else ''} not in the average"
        threshold, label = panel.threshold(options) if panel.threshold else (None, "")
        out.append(PanelData(panel, labels, panel.series(buckets, models), threshold, label, note))
    return out
