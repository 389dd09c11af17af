"""The two Grafana dashboards, built with grafanalib from ``StackOptions``.

* **LLM overview** (Prometheus): traffic, errors, latency with exemplars, tokens, spend, and llmmetrics' own
  export health. Threshold lines and colours use the same options as the alert rules.
* **LLM traces** (Loki): recent errors, slowest calls, one trace's calls and totals, cost by user and by a
  feature flag. Users and flags are never metric labels, so these come from LogQL over the JSON records.

Datasources are referenced through a dashboard variable whose default is the provisioned uid, so the JSON
works as-is in the bundled stack and can be imported into another Grafana by picking a datasource.
"""

from __future__ import annotations

from typing import Any

from grafanalib import core

from llmmetrics.stack.grafanalib_ext import (
    Dashboard, DatasourceVariable, Logs, LokiTarget, PrometheusTarget, QueryVariable, RowPanel, Stat, Table,
    TextboxVariable, TimeSeries, dashboard_json, datasource_ref, threshold_steps,
)
from llmmetrics.stack.options import StackOptions, le_matcher

OVERVIEW_UID = "llm-overview"
TRACES_UID = "llm-traces"
#: The feature flag the traces dashboard groups cost by, until the user types another name.
DEFAULT_FEATURE_FLAG = "new_prompt"

_PROM = datasource_ref("prometheus", "${datasource}")
_LOKI = datasource_ref("loki", "${datasource}")
_GREEN, _RED, _ORANGE = "green", "red", "orange"

_LLM = 'job=~"$service", env=~"$env", model=~"$model"'
_SELF = 'job=~"$service", env=~"$env"'
_STREAM = '{service_name=~"$service", env=~"$env"}'


def _layout(rows: list[tuple[str, list[tuple[Any, int, int]]]]) -> list[Any]:
    """Place panels left to right, wrapping at 24 columns, each titled row starting a new band."""
    placed: list[Any] = []
    y = 0
    for title, panels in rows:
        placed.append(RowPanel(title=title, gridPos=core.GridPos(h=1, w=24, x=0, y=y)))
        y += 1
        x = 0
        band = 0
        for panel, width, height in panels:
            if x + width > 24:
                y += band
                x, band = 0, 0
            panel.gridPos = core.GridPos(h=height, w=width, x=x, y=y)
            placed.append(panel)
            x += width
            band = max(band, height)
        y += band
    return placed


def _prom(expr: str, ref: str = "A", legend: str = "", *, instant: bool = False, exemplar: bool = False,
          fmt: str = "time_series") -> PrometheusTarget:
    return PrometheusTarget(expr=expr, refId=ref, legendFormat=legend, instant=instant, exemplar=exemplar,
                            format=fmt, datasource=_PROM)


def _loki(expr: str, ref: str = "A", legend: str | None = None, *, instant: bool = False,
          max_lines: int | None = None) -> LokiTarget:
    return LokiTarget(expr=expr, refId=ref, legendFormat=legend, queryType="instant" if instant else "range",
                      maxLines=max_lines, datasource=_LOKI)


def _timeseries(title: str, description: str, targets: list[Any], unit: str, axis_label: str, *,
                threshold: float | None = None, stacking: bool = False) -> TimeSeries:
    steps = threshold_steps(_GREEN, (threshold, _RED)) if threshold is not None else threshold_steps(_GREEN)
    return TimeSeries(
        title=title, description=description, dataSource=_PROM, targets=targets, unit=unit, axisLabel=axis_label,
        thresholds=steps, thresholdsStyleMode="dashed" if threshold is not None else "off",
        legendDisplayMode="list", tooltipMode="multi", tooltipSort="desc", fillOpacity=10,
        stacking={"group": "A", "mode": "normal"} if stacking else {},
    )


def _stat(title: str, description: str, targets: list[Any], unit: str, *, red_at: float | None = None,
          decimals: int | None = None, datasource: dict[str, str] = _PROM, time_from: str | None = None) -> Stat:
    steps = threshold_steps(_GREEN, (red_at, _RED)) if red_at is not None else threshold_steps(_GREEN)
    return Stat(
        title=title, description=description, dataSource=datasource, targets=targets, format=unit,
        thresholds=steps, decimals=decimals, reduceCalc="lastNotNull", graphMode="none",
        textMode="value_and_name" if len(targets) > 1 else "value", noValue=None, timeFrom=time_from,
    )


def _table(title: str, description: str, targets: list[Any], unit: str, value_name: str, *,
           datasource: dict[str, str] = _PROM) -> Table:
    return Table(
        title=title, description=description, dataSource=datasource, targets=targets, unit=unit,
        thresholds=threshold_steps(_GREEN), filterable=True,
        sortBy=[core.TableSortByField(displayName=value_name, desc=True)],
        transformations=[{"id": "organize", "options": {
            "excludeByName": {"Time": True}, "indexByName": {}, "renameByName": {"Value": value_name}}}],
    )


def _prometheus_variables(options: StackOptions) -> list[Any]:
    source = datasource_ref("prometheus", "${datasource}")
    return [
        DatasourceVariable(name="datasource", label="Prometheus", query="prometheus", default=options.prometheus_uid),
        QueryVariable(name="service", label="Service (job)", query="label_values(llm_requests_total, job)",
                      default=options.job, datasourceRef=source, includeAll=True, multi=True, allValue=".+",
                      refresh=core.REFRESH_ON_TIME_RANGE_CHANGE),
        QueryVariable(name="env", label="Environment", query='label_values(llm_requests_total{job=~"$service"}, env)',
                      default="$__all", datasourceRef=source, includeAll=True, multi=True, allValue=".*",
                      refresh=core.REFRESH_ON_TIME_RANGE_CHANGE),
        QueryVariable(name="model", label="Model",
                      query='label_values(llm_requests_total{job=~"$service", env=~"$env"}, model)',
                      default="$__all", datasourceRef=source, includeAll=True, multi=True, allValue=".*",
                      refresh=core.REFRESH_ON_TIME_RANGE_CHANGE),
    ]


def _links(to_uid: str, title: str) -> list[dict[str, Any]]:
    return [{
        "title": title, "type": "link", "url": f"/d/{to_uid}", "icon": "dashboard", "tooltip": "",
        "tags": [], "asDropdown": False, "targetBlank": False, "includeVars": False, "keepTime": True,
    }]


def overview(options: StackOptions) -> dict[str, Any]:
    """The LLM overview dashboard (Prometheus)."""
    slo = options.latency_slo_seconds
    ok = f'{_LLM}, status="ok"'
    forecast_expr = 'sum(job:llm_cost_usd:forecast_daily{job=~"$service", env=~"$env"})'
    spend_red = options.spend_ratio * options.daily_budget_usd if options.daily_budget_usd is not None else None
    traffic = [
        (_timeseries(
            "Requests per minute by model", "LLM API calls per minute, successes and failures, by requested model.",
            [_prom(f"sum by (model) (rate(llm_requests_total{{{_LLM}}}[$__rate_interval])) * 60", legend="{{model}}")],
            "reqpm", "requests / min", stacking=True), 12, 8),
        (_stat(
            "Error rate (last hour)", f"Failed calls / all calls over the last hour; red above the "
            f"{options.error_rate_threshold:.0%} threshold of the LLMHighErrorRate alert.",
            [_prom(f'sum(increase(llm_requests_total{{{_LLM}, status="error"}}[1h])) '
                   f"/ sum(increase(llm_requests_total{{{_LLM}}}[1h]))", instant=True)],
            "percentunit", red_at=options.error_rate_threshold, decimals=2), 4, 8),
        (_stat(
            "Average cost per request", "Spend divided by calls over the dashboard's time range (USD, from the "
            "price table; unpriced models count as zero).",
            [_prom(f"sum(increase(llm_cost_usd_total{{{_LLM}}}[$__range])) "
                   f"/ sum(increase(llm_requests_total{{{_LLM}}}[$__range]))", instant=True)],
            "currencyUSD", decimals=4), 4, 8),
        (_stat(
            "Spend today vs forecast", "Spend since midnight and the daily forecast (the configured budget, or "
            "the trailing 7-day average once 8 days of history exist). LLMDailySpendHigh fires when the last "
            f"24 hours exceed {options.spend_ratio:g}x the forecast.",
            [_prom(f"sum(increase(llm_cost_usd_total{{{_LLM}}}[$__range]))", "A", "Spent today", instant=True),
             _prom(forecast_expr, "B", "Forecast", instant=True)],
            "currencyUSD", red_at=spend_red, decimals=2, time_from="now/d"), 4, 8),
        (_timeseries(
            "Error ratio (5m)", "Failed calls / all calls over 5 minutes; the dashed line is the LLMHighErrorRate "
            "threshold.",
            [_prom(f'sum(rate(llm_requests_total{{{_LLM}, status="error"}}[5m])) '
                   f"/ sum(rate(llm_requests_total{{{_LLM}}}[5m]))", legend="error ratio")],
            "percentunit", "failed / all calls", threshold=options.error_rate_threshold), 8, 8),
        (_timeseries(
            "Errors by type", "Failed calls per minute by exception class (RateLimitError, APITimeoutError, ...).",
            [_prom(f"sum by (error_type) (rate(llm_errors_total{{{_LLM}}}[$__rate_interval])) * 60",
                   legend="{{error_type}}")],
            "cpm", "errors / min", stacking=True), 8, 8),
        (_timeseries(
            "Rate-limited calls", "Share of calls that failed with RateLimitError over 5 minutes; the dashed line "
            "is the LLMRateLimited threshold.",
            [_prom(f'(sum(rate(llm_errors_total{{{_LLM}, error_type="RateLimitError"}}[5m])) or vector(0)) '
                   f"/ sum(rate(llm_requests_total{{{_LLM}}}[5m]))", legend="rate limited")],
            "percentunit", "rate-limited / all calls", threshold=options.rate_limit_threshold), 8, 8),
    ]
    latency = [
        (_timeseries(
            "p95 latency by model", "95th percentile call duration. Exemplars (dots) carry the trace id of a real "
            "call: click one to open that call's trace in Loki. The dashed line is the latency SLO.",
            [_prom(f"histogram_quantile(0.95, sum by (model, le) "
                   f"(rate(llm_request_duration_seconds_bucket{{{_LLM}}}[$__rate_interval])))",
                   legend="{{model}}", exemplar=True)],
            "s", "duration", threshold=slo), 12, 9),
        (_timeseries(
            f"Calls slower than {slo:g} s (latency SLO)", "Share of successful calls slower than the SLO bound, "
            "from the histogram bucket at exactly that bound; the dashed line is the LLMLatencySLOBreach threshold.",
            [_prom(f"1 - (sum by (model) (rate(llm_request_duration_seconds_bucket{{{ok}, {le_matcher(slo)}}}[5m])) "
                   f"/ sum by (model) (rate(llm_request_duration_seconds_count{{{ok}}}[5m])))", legend="{{model}}")],
            "percentunit", "slower than SLO / all", threshold=round(1 - options.latency_slo_target, 10)), 12, 9),
        (_timeseries(
            "p95 time to first token by model", "95th percentile time until the first streamed token (streaming "
            "calls only).",
            [_prom(f"histogram_quantile(0.95, sum by (model, le) "
                   f"(rate(llm_time_to_first_token_seconds_bucket{{{_LLM}}}[$__rate_interval])))",
                   legend="{{model}}", exemplar=True)],
            "s", "time to first token"), 8, 8),
        (_timeseries(
            "p95 time per output chunk by model", "95th percentile of each stream's mean time between output "
            "chunks after the first (inter-token latency; streaming calls only): how fast an answer arrives once "
            "it has begun.",
            [_prom(f"histogram_quantile(0.95, sum by (model, le) "
                   f"(rate(llm_time_per_output_chunk_seconds_bucket{{{_LLM}}}[$__rate_interval])))",
                   legend="{{model}}")],
            "s", "time per chunk"), 8, 8),
        (_timeseries(
            "In-flight requests", "LLM API calls in progress, by model.",
            [_prom(f"sum by (model) (llm_in_flight_requests{{{_LLM}}})", legend="{{model}}")],
            "short", "calls in progress", stacking=True), 8, 8),
    ]
    tokens_cost = [
        (_timeseries(
            "Tokens per minute by type", "Input, output, cached input (cache reads), cache write and reasoning "
            "tokens per minute.",
            [_prom(f"sum by (token_type) (rate(llm_tokens_total{{{_LLM}}}[$__rate_interval])) * 60",
                   legend="{{token_type}}")],
            "short", "tokens / min"), 12, 8),
        (_table(
            "Top models by cost", "The ten models with the highest spend over the dashboard's time range.",
            [_prom(f"topk(10, sum by (model) (increase(llm_cost_usd_total{{{_LLM}}}[$__range])))",
                   instant=True, fmt="table")],
            "currencyUSD", "Spend (USD)"), 12, 8),
    ]
    exporter = [
        (_timeseries(
            "Export queue depth", "Trace records waiting in each sink's queue (a growing queue means the sink "
            "cannot keep up).",
            [_prom(f"sum by (sink) (llmmetrics_export_queue_depth{{{_SELF}}})", legend="{{sink}}")],
            "short", "records"), 8, 8),
        (_timeseries(
            "Trace records per minute", "Records rendered and handed to the sinks, by kind (call or run).",
            [_prom(f"sum by (kind) (rate(llmmetrics_records_emitted_total{{{_SELF}}}[$__rate_interval])) * 60",
                   legend="{{kind}}")],
            "cpm", "records / min"), 8, 8),
        (_stat(
            "Export failures", "Records dropped, Loki pushes rejected or failed, and export errors over the "
            "dashboard's time range (the LLMMetricsExporterFailing alert), and the invalid or unknown LLMMETRICS_* "
            "settings the running processes replaced by defaults (LLMMetricsMisconfigured); red when any occurred.",
            [_prom(f"ceil(sum(increase(llmmetrics_records_dropped_total{{{_SELF}}}[$__range]))) or vector(0)",
                   "A", "dropped", instant=True),
             _prom(f'ceil(sum(increase(llmmetrics_loki_pushes_total{{{_SELF}, outcome=~"rejected|error"}}[$__range]))) '
                   "or vector(0)", "B", "Loki push failures", instant=True),
             _prom(f"ceil(sum(increase(llmmetrics_export_errors_total{{{_SELF}}}[$__range]))) or vector(0)",
                   "C", "export errors", instant=True),
             _prom(f"sum(llmmetrics_config_errors_total{{{_SELF}}}) or vector(0)", "D", "config errors",
                   instant=True)],
            "short", red_at=1, decimals=0), 8, 8),
    ]
    dashboard = Dashboard(
        title="LLM overview", uid=OVERVIEW_UID, tags=["llm", "llmmetrics"], timezone="utc", refresh="30s",
        description="LLM calls instrumented with llmmetrics: traffic, errors, latency, tokens, spend, exporter health.",
        graphTooltip=core.GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR, time=core.Time("now-6h", "now"),
        templating=core.Templating(list=_prometheus_variables(options)),
        links=_links(TRACES_UID, "LLM traces"),
        panels=_layout([
            ("Traffic and errors", traffic), ("Latency", latency), ("Tokens and cost", tokens_cost),
            ("Exporter health (llmmetrics self-metrics)", exporter),
        ]),
    )
    return dashboard_json(dashboard)


def _call_fields(*fields: str) -> str:
    """``| json`` extracting only the named record fields (cheap on large records, no label explosion)."""
    return "| json " + ", ".join(f'{alias}="{path}"' for alias, path in fields)


def trace_filter() -> str:
    """The pipeline keeping the records of trace ``$trace_id`` (its calls and, for a run, the run record)."""
    return f'|= "$trace_id" {_call_fields(("kind", "kind"), ("trace", "trace_id"))} | trace="$trace_id"'


def traces(options: StackOptions) -> dict[str, Any]:
    """The LLM traces dashboard (Loki)."""
    unwrap_call = '| kind="call" | unwrap {field} | __error__=""'
    in_trace = f"{_STREAM} {trace_filter()}"

    def trace_total(field: str) -> str:
        return (f'sum(sum_over_time({_STREAM} |= "$trace_id" '
                f'{_call_fields(("kind", "kind"), ("trace", "trace_id"), (field, field))} | trace="$trace_id" '
                f"{unwrap_call.format(field=field)} [$__range]))")

    recent = [
        (Logs(title="Recent errors", description="Failed calls and runs, newest first. Expand a line for its "
              "fields; the trace_id link opens that trace below.", dataSource=_LOKI,
              targets=[_loki('{service_name=~"$service", env=~"$env", level="error"}', max_lines=200)],
              showTime=True, wrapLogMessages=False, prettifyLogMessage=False, enableLogDetails=True,
              sortOrder="Descending"), 24, 10),
        (_table("Slowest calls", "The 20 slowest calls in the time range (latency in ms) with their trace ids.",
                [_loki(f"topk(20, max by (model, trace_id, call_id) (max_over_time({_STREAM} "
                       f'{_call_fields(("kind", "kind"), ("model", "model"), ("latency_ms", "latency_ms"), ("trace_id", "trace_id"), ("call_id", "call_id"))} '
                       f'{unwrap_call.format(field="latency_ms")} [$__range])))', instant=True)],
                "ms", "Latency (ms)", datasource=_LOKI), 24, 9),
    ]
    trace = [
        (_stat("Calls in trace", "Calls recorded with trace id $trace_id.",
               [_loki(f"sum(count_over_time({in_trace} | kind=\"call\" [$__range]))", instant=True)],
               "short", datasource=_LOKI, decimals=0), 4, 5),
        (_stat("Failed calls in trace", "Calls of trace $trace_id that failed.",
               [_loki(f'sum(count_over_time({_STREAM} |= "$trace_id" '
                      f'{_call_fields(("kind", "kind"), ("trace", "trace_id"), ("status", "status"))} '
                      f'| trace="$trace_id" | kind="call" | status="error" [$__range]))', instant=True)],
               "short", datasource=_LOKI, red_at=1, decimals=0), 4, 5),
        (_stat("Cost of trace", "Sum of the priced calls' cost (USD).",
               [_loki(trace_total("cost_usd"), instant=True)], "currencyUSD", datasource=_LOKI, decimals=4), 4, 5),
        (_stat("Tokens in trace", "Sum of total_tokens over the trace's calls.",
               [_loki(trace_total("total_tokens"), instant=True)], "short", datasource=_LOKI, decimals=0), 4, 5),
        (_stat("Model wait in trace", "Sum of the calls' latencies: time spent waiting on the model.",
               [_loki(trace_total("latency_ms"), instant=True)], "ms", datasource=_LOKI), 4, 5),
        (_stat("Slowest call in trace", "Longest single call of the trace.",
               [_loki(f'max(max_over_time({_STREAM} |= "$trace_id" '
                      f'{_call_fields(("kind", "kind"), ("trace", "trace_id"), ("latency_ms", "latency_ms"))} '
                      f'| trace="$trace_id" {unwrap_call.format(field="latency_ms")} [$__range]))', instant=True)],
               "ms", datasource=_LOKI), 4, 5),
        (Logs(title="Records of trace $trace_id", description="Every call of the trace in order, and the run "
              "record (kind=run) with the run's own totals when the trace is an agent run.", dataSource=_LOKI,
              targets=[_loki(in_trace, max_lines=1000)], showTime=True, wrapLogMessages=True,
              prettifyLogMessage=True, enableLogDetails=True, sortOrder="Ascending"), 24, 12),
    ]
    cost = [
        (_table("Cost by user", "Spend per user_id over the time range (calls without a user are grouped "
                "under an empty user).",
                [_loki(f"sort_desc(sum by (user_id) (sum_over_time({_STREAM} "
                       f'{_call_fields(("kind", "kind"), ("user_id", "user_id"), ("cost_usd", "cost_usd"))} '
                       f'{unwrap_call.format(field="cost_usd")} [$__range])))', instant=True)],
                "currencyUSD", "Spend (USD)", datasource=_LOKI), 12, 9),
        (_table("Cost by feature flag $feature_flag", "Spend per value of the feature flag named in the "
                "feature_flag variable (from the records' feature_flags object).",
                [_loki(f"sort_desc(sum by (flag_value) (sum_over_time({_STREAM} "
                       f'{_call_fields(("kind", "kind"), ("flag_value", "feature_flags.$feature_flag"), ("cost_usd", "cost_usd"))} '
                       f'{unwrap_call.format(field="cost_usd")} [$__range])))', instant=True)],
                "currencyUSD", "Spend (USD)", datasource=_LOKI), 12, 9),
    ]
    loki_source = datasource_ref("loki", "${datasource}")
    variables = [
        DatasourceVariable(name="datasource", label="Loki", query="loki", default=options.loki_uid),
        QueryVariable(name="service", label="Service", query="label_values(service_name)", default=options.job,
                      datasourceRef=loki_source, includeAll=True, multi=True, allValue=".+",
                      refresh=core.REFRESH_ON_TIME_RANGE_CHANGE),
        QueryVariable(name="env", label="Environment", query='label_values({service_name=~"$service"}, env)',
                      default="$__all", datasourceRef=loki_source, includeAll=True, multi=True, allValue=".*",
                      refresh=core.REFRESH_ON_TIME_RANGE_CHANGE),
        TextboxVariable(name="trace_id", label="Trace id", query="", default=""),
        TextboxVariable(name="feature_flag", label="Feature flag", query=DEFAULT_FEATURE_FLAG,
                        default=DEFAULT_FEATURE_FLAG),
    ]
    dashboard = Dashboard(
        title="LLM traces", uid=TRACES_UID, tags=["llm", "llmmetrics"], timezone="utc", refresh="1m",
        description="LLM call records in Loki: errors, slow calls, one trace at a time, cost by user and flag.",
        time=core.Time("now-6h", "now"), templating=core.Templating(list=variables),
        links=_links(OVERVIEW_UID, "LLM overview"),
        panels=_layout([
            ("Errors and slow calls", recent), ("Trace $trace_id", trace), ("Cost by user and feature flag", cost),
        ]),
    )
    return dashboard_json(dashboard)
