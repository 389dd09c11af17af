"""The report's four panels are the generated overview dashboard's: each names a panel that exists there,
draws what its query measures, in the same unit, and its dashed line is the threshold that panel (and the
alert) uses, for the default options and for changed ones."""

from __future__ import annotations

import pytest

from llmmetrics.report.buckets import TimeBuckets
from llmmetrics.report.panels import PANELS, panel_data
from llmmetrics.stack.dashboards import overview
from llmmetrics.stack.options import StackOptions

#: the report's unit → (Grafana's unit, factor from the report's value to Grafana's)
UNITS = {"per_minute": ("reqpm", 1.0), "percent": ("percentunit", 0.01), "usd": ("currencyUSD", 1.0),
         "seconds": ("s", 1.0)}
#: what each Grafana query must be computed from, for the report's definition to be the same
MEASURES = {"requests": ("llm_requests_total", "sum by (model)"), "errors": ('status="error"', "llm_requests_total"),
            "cost": ("llm_cost_usd_total", "llm_requests_total"),
            "latency": ("histogram_quantile(0.95", "llm_request_duration_seconds_bucket")}


@pytest.mark.parametrize("options", [StackOptions(), StackOptions(error_rate_threshold=0.02, latency_slo_seconds=1.5)])
def test_each_panel_matches_its_dashboard_panel(options: StackOptions) -> None:
    """Title, unit, query and threshold line agree with the overview dashboard generated from the same options."""
    dashboard = {panel["title"]: panel for panel in overview(options)["panels"] if "fieldConfig" in panel}
    buckets = TimeBuckets()
    buckets.stats(1_800_000_000 * 10**9, "gpt-4o-mini").add_call(latency_ms=900.0, failed=False, cost=0.001)
    drawn = {data.panel.key: data for data in panel_data(buckets, options, unpriced=0)}
    for panel in PANELS:
        grafana = dashboard[panel.grafana_title]
        unit, factor = UNITS[panel.unit]
        assert grafana["fieldConfig"]["defaults"]["unit"] == unit, panel.title
        expr = grafana["targets"][0]["expr"]
        assert all(part in expr for part in MEASURES[panel.key]), (panel.title, expr)
        red = [step["value"] for step in grafana["fieldConfig"]["defaults"]["thresholds"]["steps"] if step["color"] == "red"]
        threshold = drawn[panel.key].threshold
        assert ([threshold * factor] if threshold is not None else []) == pytest.approx(red), panel.title
