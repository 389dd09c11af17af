"""Contract tests for the generated Grafana dashboards (no Grafana server here).

The dashboards are checked against the JSON schemas Grafana publishes for its dashboard model, panel
plugins and query models (vendored in ``tests/stack/schemas/grafana``, additionalProperties: false), then for the project's
own rules: current panel types, a unit on every axis, fixed datasource uids, thresholds equal to the alert
rules' and only metric names the library exports.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest
from prometheus_client import CollectorRegistry

from llmmetrics.metrics import LLMMetrics, SelfMetrics
from llmmetrics.stack import dashboards, generate
from llmmetrics.stack.options import StackOptions
from tests.stack.shared import load_schema
from tests.stack.stack_files import load_dashboards, panels, targets

DASHBOARDS = load_dashboards()
PANEL_TYPES = {"timeseries", "stat", "table", "logs"}
#: Metric families of the spec (without the _total/_bucket/_count/_sum sample suffixes).
def _exported_families() -> set[str]:
    """Every metric family the library registers (its calls' metrics and its own health metrics)."""
    registry = CollectorRegistry()
    LLMMetrics(registry, self_metrics=SelfMetrics(registry))
    return {family.name for family in registry.collect()}


SPEC_METRICS = _exported_families()


def _validator(schema_file: str, definition: str) -> jsonschema.Draft7Validator:
    schema = dict(load_schema(schema_file))
    schema["$ref"] = f"#/definitions/{definition}"
    return jsonschema.Draft7Validator(schema)


def _errors(validator: jsonschema.Draft7Validator, instance: Any) -> list[str]:
    """Every violation, with the deepest cause of oneOf/anyOf failures spelled out."""
    found = []
    for error in validator.iter_errors(instance):
        detail = jsonschema.exceptions.best_match(error.context) if error.context else error
        found.append(f"{'/'.join(map(str, error.absolute_path))}: {detail.message[:300]}")
    return found


def _panel_ids(name: str) -> list[str]:
    return [f"{name}:{p.get('title')}" for p in panels(DASHBOARDS[name])]


def test_the_two_dashboards_are_committed() -> None:
    """The overview and traces dashboards exist as committed JSON files."""
    assert set(DASHBOARDS) == {"llm-overview.json", "llm-traces.json"}


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_matches_grafana_schema(name: str) -> None:
    """The dashboard JSON validates against Grafana's Dashboard schema (rows carry collapsed and panels)."""
    assert _errors(_validator("grafana/dashboard.jsonschema.json", "Dashboard"), DASHBOARDS[name]) == []


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_panel_options_match_panel_plugin_schema(name: str) -> None:
    """Each panel's options and fieldConfig.defaults.custom validate against its plugin's schema."""
    problems = []
    for panel in panels(DASHBOARDS[name]):
        kind = panel["type"]
        schema_file = f"grafana/{kind}.jsonschema.json"
        problems += [f"{panel['title']} options {e}" for e in _errors(_validator(schema_file, "Options"),
                                                                      panel["options"])]
        custom = panel["fieldConfig"]["defaults"].get("custom", {})
        if "FieldConfig" in load_schema(schema_file)["definitions"]:
            problems += [f"{panel['title']} custom {e}" for e in _errors(_validator(schema_file, "FieldConfig"), custom)]
        elif custom:
            problems.append(f"{panel['title']}: {kind} has no custom field config, got {custom}")
    assert problems == []


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_targets_match_datasource_query_schema(name: str) -> None:
    """Every Prometheus and Loki target validates against that datasource's query schema."""
    problems = []
    for plugin, definition in (("prometheus", "Dataquery"), ("loki", "dataquery")):
        validator = _validator(f"grafana/{plugin}.jsonschema.json", definition)
        for panel, target in targets(DASHBOARDS[name], plugin):
            problems += [f"{panel['title']} {target['refId']}: {e}" for e in _errors(validator, target)]
    all_targets = [t for p in panels(DASHBOARDS[name]) for t in p.get("targets", [])]
    assert all_targets and problems == []
    assert len(all_targets) == len(list(targets(DASHBOARDS[name], "prometheus"))) + len(
        list(targets(DASHBOARDS[name], "loki")))


def test_schema_validation_rejects_legacy_grafanalib_output() -> None:
    """The schema check has teeth: grafanalib's unmodified TimeSeries JSON (legacy keys) is rejected."""
    from grafanalib import core

    panel = core.TimeSeries(title="x", gridPos=core.GridPos(h=1, w=1, x=0, y=0), id=1)
    legacy = json.loads(json.dumps(panel.to_json_data(), default=lambda o: o.to_json_data()))
    assert _errors(_validator("grafana/dashboard.jsonschema.json", "Panel"), legacy) != []


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_only_current_panel_types(name: str) -> None:
    """Panels are timeseries, stat, table or logs (no legacy graph/singlestat)."""
    assert {p["type"] for p in panels(DASHBOARDS[name])} <= PANEL_TYPES


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_axis_and_value_has_a_unit(name: str) -> None:
    """Time series, stats and tables set a unit; time series also label their axis."""
    missing = []
    for panel in panels(DASHBOARDS[name]):
        defaults = panel["fieldConfig"]["defaults"]
        if panel["type"] in {"timeseries", "stat", "table"} and not defaults.get("unit"):
            missing.append(panel["title"])
        if panel["type"] == "timeseries" and not defaults["custom"].get("axisLabel"):
            missing.append(f"{panel['title']} (axis label)")
    assert missing == []


@pytest.mark.parametrize(("name", "plugin", "uid"), [("llm-overview.json", "prometheus", "prometheus"),
                                                     ("llm-traces.json", "loki", "loki")])
def test_datasources_use_the_provisioned_uid(name: str, plugin: str, uid: str) -> None:
    """Every panel and target uses the datasource variable, whose default is the provisioned uid."""
    dashboard = DASHBOARDS[name]
    variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "datasource")
    assert (variable["type"], variable["query"], variable["current"]["value"]) == ("datasource", plugin, uid)
    refs = [p["datasource"] for p in panels(dashboard)] + [t["datasource"] for p in panels(dashboard)
                                                          for t in p["targets"]]
    assert refs and all(ref == {"type": plugin, "uid": "${datasource}"} for ref in refs)


def test_overview_has_the_issue_variables() -> None:
    """The overview is filtered by datasource, service (job), env and model."""
    names = [v["name"] for v in DASHBOARDS["llm-overview.json"]["templating"]["list"]]
    assert names == ["datasource", "service", "env", "model"]


def _by_title(dashboard: dict[str, Any], prefix: str) -> dict[str, Any]:
    matches = [p for p in panels(dashboard) if p["title"].startswith(prefix)]
    assert len(matches) == 1, f"expected one panel titled {prefix!r}, got {[p['title'] for p in matches]}"
    return matches[0]


def _red_threshold(panel: dict[str, Any]) -> float:
    return next(s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"] if s["color"] == "red")


def test_latency_panel_asks_for_exemplars() -> None:
    """The p95 latency query requests exemplars, so Grafana draws the trace-linked dots."""
    panel = _by_title(DASHBOARDS["llm-overview.json"], "p95 latency by model")
    assert [t["exemplar"] for t in panel["targets"]] == [True]
    assert "llm_request_duration_seconds_bucket" in panel["targets"][0]["expr"]


@pytest.mark.parametrize("options", [StackOptions(), StackOptions(
    error_rate_threshold=0.02, latency_slo_seconds=1.5, latency_slo_target=0.9, rate_limit_threshold=0.25,
    daily_budget_usd=40.0, spend_ratio=3.0)], ids=["defaults", "custom"])
def test_thresholds_match_alert_rules(options: StackOptions) -> None:
    """Threshold lines/colours equal the numbers in the alert expressions for the same options."""
    overview = dashboards.overview(options)
    rendered = generate.render(options)
    alert_text = rendered["prometheus/rules/llmmetrics-alerts.rules.yml"]
    recording_text = rendered["prometheus/rules/llmmetrics-recording.rules.yml"]

    def number(x: float) -> str:
        return repr(round(x, 10)).removesuffix(".0")

    error = _red_threshold(_by_title(overview, "Error rate (last hour)"))
    assert error == _red_threshold(_by_title(overview, "Error ratio (5m)")) == options.error_rate_threshold
    assert f"job:llm_request_error_ratio:rate5m > {number(error)}\n" in alert_text
    slo = _red_threshold(_by_title(overview, "p95 latency by model"))
    assert slo == options.latency_slo_seconds
    slow = _by_title(overview, "Calls slower than")
    assert _red_threshold(slow) == pytest.approx(1 - options.latency_slo_target)
    assert f"ratio_rate5m > {number(1 - options.latency_slo_target)}\n" in alert_text
    le = re.search(r'le=~"([^"]+)"', slow["targets"][0]["expr"]).group(1)
    assert f'le=~"{le}"' in recording_text and re.fullmatch(le.replace("\\\\", "\\"), number(slo))
    rate_limited = _red_threshold(_by_title(overview, "Rate-limited calls"))
    assert rate_limited == options.rate_limit_threshold
    assert f"job_model:llm_rate_limited:ratio_rate5m > {number(rate_limited)}\n" in alert_text
    spend = _by_title(overview, "Spend today vs forecast")
    if options.daily_budget_usd is None:
        assert [s["color"] for s in spend["fieldConfig"]["defaults"]["thresholds"]["steps"]] == ["green"]
    else:
        assert _red_threshold(spend) == options.spend_ratio * options.daily_budget_usd
        assert f"0 * job:llm_cost_usd:increase1d + {number(options.daily_budget_usd)}" in recording_text
    assert f"job:llm_cost_usd:increase1d > {number(options.spend_ratio)} * job:llm_cost_usd:forecast_daily" in alert_text


def test_promql_uses_only_exported_metric_names() -> None:
    """Every llm_/llmmetrics_ name in a dashboard query is a spec metric (with a valid sample suffix)."""
    unknown = set()
    for _, target in targets(DASHBOARDS["llm-overview.json"], "prometheus"):
        for name in re.findall(r"(?<![:\w])(llm(?:metrics)?_\w+)", target["expr"]):
            family = re.sub(r"_(total|bucket|count|sum)$", "", name)
            if family not in SPEC_METRICS:
                unknown.add(name)
    assert unknown == set()


def test_trace_dashboard_has_trace_and_flag_variables() -> None:
    """The traces dashboard lets a user paste a trace id and name a feature flag."""
    variables = {v["name"]: v for v in DASHBOARDS["llm-traces.json"]["templating"]["list"]}
    assert variables["trace_id"]["type"] == variables["feature_flag"]["type"] == "textbox"
    assert variables["feature_flag"]["current"]["value"] == dashboards.DEFAULT_FEATURE_FLAG


def test_time_per_output_chunk_panel_reads_its_histogram_by_model() -> None:
    """The latency row shows the p95 of llm_time_per_output_chunk_seconds per model, in seconds."""
    panel = _by_title(DASHBOARDS["llm-overview.json"], "p95 time per output chunk by model")
    (target,) = panel["targets"]
    assert target["expr"].startswith("histogram_quantile(0.95, sum by (model, le) (rate(")
    assert "llm_time_per_output_chunk_seconds_bucket{" in target["expr"]
    assert panel["fieldConfig"]["defaults"]["unit"] == "s"
