"""Every LogQL query the project ships, run on the real Loki over records the Loki sink wrote, returns the
rows it promises: each Loki panel and template variable of the dashboards, and every ```logql block of
README.md and docs/*.md (collected afresh each run, wherever the text moves).

The promise of each query is written here as a plain-Python reading of the same records (the workload's
trace file). A query shipped without such a reading fails, naming it: add its expected answer below.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from tests.stack.stack_files import load_dashboards, panels, substitute, targets
from tests.support.doc_queries import documented_logql
from tests.support.workload import Workload

Records = list[dict[str, Any]]
#: A log query's answer: the (timestamp, line) of each entry. A metric query's: {frozen labels: value}.
LogAnswer = Counter[tuple[int, str]]
Vector = dict[frozenset[tuple[str, str]], float]


def lines(records: Records, keep: Callable[[dict[str, Any]], bool]) -> LogAnswer:
    return Counter((r["ts_ns"], orjson.dumps(r).decode()) for r in records if keep(r))


def vector(records: Records, keep: Callable[[dict[str, Any]], bool], labels: Callable[[dict[str, Any]], dict[str, str]],
           value: Callable[[dict[str, Any]], float], combine: Callable[[list[float]], float] = sum, *,
           empty_labels: bool = False) -> Vector:
    """Samples grouped by ``labels``. A grouping label with an empty value is absent from Loki 3.7's answer for
    some queries (the docs' ``by (user)``) and present for others (the dashboard's ``by (user_id)``, ``by
    (flag_value)``): ``empty_labels`` says which one the query gives. Either way it is the same row."""
    groups: dict[frozenset[tuple[str, str]], list[float]] = defaultdict(list)
    for r in records:
        if keep(r):
            groups[frozenset((k, v) for k, v in labels(r).items() if empty_labels or v != "")].append(value(r))
    return {key: combine(values) for key, values in groups.items()}


def call(r: dict[str, Any]) -> bool:
    return r["kind"] == "call"


def priced_call(r: dict[str, Any]) -> bool:
    return call(r) and r["cost_usd"] is not None


# ---- what each query promises -------------------------------------------------------------------------------

def doc_answers(w: Workload, records: Records) -> dict[str, Callable[[], LogAnswer | Vector]]:
    """Expected answers of the documented queries, by their text with the documented samples replaced."""
    run = w.trace_id
    failed = "gpt-4o"  # the workload's failed call of the documented "errors of one model" question
    in_run = lambda r: r["trace_id"] == run  # noqa: E731
    return {
        f'{{service_name="checkout"}} | trace_id="{run}"': lambda: lines(records, in_run),
        f'{{service_name="checkout"}} |= "{run}"': lambda: lines(records, lambda r: run in orjson.dumps(r).decode()),
        '{service_name="checkout"} | json | kind="run"': lambda: lines(records, lambda r: r["kind"] == "run"),
        'sort_desc(max_over_time({service_name="checkout", level="error"} | json kind="kind", model="model", '
        f'latency_ms="latency_ms" | kind="call" | model="{failed}" | unwrap latency_ms | __error__="" [6h]) '
        'by (call_id, trace_id))': lambda: vector(
            records, lambda r: call(r) and r["status"] == "error" and r["model"] == failed,
            lambda r: {"call_id": r["call_id"], "trace_id": r["trace_id"]}, lambda r: r["latency_ms"], max),
        f'{{service_name="checkout", level="error"}} | json model="model", latency_ms="latency_ms" | model="{failed}"':
            lambda: lines(records, lambda r: r["status"] == "error" and r.get("model") == failed),
        'sum by (user) (sum_over_time({service_name="checkout"} | json kind="kind", user="user_id", '
        'cost="cost_usd" | kind="call" | cost!="" | unwrap cost | __error__="" [1d]))': lambda: vector(
            records, priced_call, lambda r: {"user": r["user_id"] or ""}, lambda r: r["cost_usd"]),
        'sum by (level) (count_over_time({service_name="checkout"}[5m]))': lambda: vector(
            records, lambda r: True, lambda r: {"level": "error" if r["status"] == "error" else "info"},
            lambda r: 1.0),
    }


def panel_answers(w: Workload, records: Records, flag: str) -> dict[str, Callable[[], LogAnswer | Vector]]:
    """Expected answers of the traces dashboard's panels, by title, for the workload's run and ``flag``."""
    run = lambda r: r["trace_id"] == w.trace_id  # noqa: E731
    run_call = lambda r: call(r) and run(r)  # noqa: E731
    slowest = sorted((r for r in records if call(r)), key=lambda r: -r["latency_ms"])[:20]
    total = lambda field, keep=run_call: lambda: vector(records, keep, lambda r: {}, lambda r: r[field])  # noqa: E731
    return {
        "Recent errors": lambda: lines(records, lambda r: r["status"] == "error"),
        "Slowest calls": lambda: vector(
            slowest, call, lambda r: {"model": r["model"], "trace_id": r["trace_id"], "call_id": r["call_id"]},
            lambda r: r["latency_ms"], max),
        "Calls in trace": lambda: vector(records, run_call, lambda r: {}, lambda r: 1.0),
        "Failed calls in trace": lambda: vector(records, lambda r: run_call(r) and r["status"] == "error",
                                                lambda r: {}, lambda r: 1.0),
        "Cost of trace": total("cost_usd", lambda r: run_call(r) and r["cost_usd"] is not None),
        "Tokens in trace": total("total_tokens", lambda r: run_call(r) and r["total_tokens"] is not None),
        "Model wait in trace": total("latency_ms"),
        "Slowest call in trace": lambda: vector(records, run_call, lambda r: {}, lambda r: r["latency_ms"], max),
        "Records of trace $trace_id": lambda: lines(records, run),
        # as the panels say, calls without a user or without the flag are summed under an empty value
        "Cost by user": lambda: vector(records, priced_call, lambda r: {"user_id": r["user_id"] or ""},
                                       lambda r: r["cost_usd"], empty_labels=True),
        "Cost by feature flag $feature_flag": lambda: vector(
            records, priced_call, lambda r: {"flag_value": _flag(r, flag)}, lambda r: r["cost_usd"],
            empty_labels=True),
    }


def _flag(r: dict[str, Any], flag: str) -> str:
    value = (r.get("feature_flags") or {}).get(flag)
    return "" if value is None else orjson.dumps(value).decode()


# ---- asking Loki --------------------------------------------------------------------------------------------

def ask(w: Workload, query: str) -> LogAnswer | Vector:
    """Run ``query`` as Grafana would: a log query over the last day, a metric query as an instant query now."""
    now = time.time_ns()
    if query.lstrip().startswith("{"):
        return Counter((ts, line) for _, ts, line, _ in w.loki.entries(w.tenant, query, start_ns=now - 86400 * 10**9,
                                                                        end_ns=now + 10**9))
    data = w.loki.instant(w.tenant, query, time_ns=now)
    assert data["resultType"] == "vector", data
    return {frozenset(sample["metric"].items()): float(sample["value"][1]) for sample in data["result"]}


def assert_same(query: str, got: LogAnswer | Vector, expected: LogAnswer | Vector) -> None:
    assert expected, f"the workload gives no rows for {query!r}: the check would prove nothing"
    if isinstance(expected, Counter):
        assert got == expected, query
        return
    assert set(got) == set(expected), query
    for key, value in expected.items():
        assert math.isclose(got[key], value, rel_tol=1e-9, abs_tol=1e-12), (query, dict(key), got[key], value)


# ---- the documented queries ---------------------------------------------------------------------------------

DOCUMENTED = documented_logql()


def test_the_docs_hold_logql_queries() -> None:
    """README.md and docs/ hold LogQL examples (so the test below covers something)."""
    assert len(DOCUMENTED) >= 7


@pytest.mark.parametrize(("doc", "query"), DOCUMENTED, ids=[f"{d}:{q[:60]}" for d, q in DOCUMENTED])
def test_each_documented_query_returns_the_rows_it_promises(workload: Workload, doc: str, query: str) -> None:
    """A ```logql block, its sample trace id and model replaced by the workload's, answers as its text says."""
    asked = query.replace("4bf92f3577b34da6a3ce929d0e0e4736", workload.trace_id)
    asked = re.sub(r'model="(gpt-5\.5|gpt-4o-mini)"( \| unwrap|$)', r'model="gpt-4o"\2', asked)
    expected = doc_answers(workload, workload.records()).get(asked)
    assert expected is not None, f"{doc}: no expected answer for {asked!r}: add it to doc_answers()"
    assert_same(asked, ask(workload, asked), expected())


# ---- the dashboards -----------------------------------------------------------------------------------------

PANELS = [(name, panel["title"], target["expr"]) for name, dashboard in load_dashboards().items()
          for panel, target in targets(dashboard, "loki")]


@pytest.mark.parametrize(("dashboard", "title", "expr"), PANELS, ids=[f"{d}:{t}" for d, t, _ in PANELS])
def test_each_dashboard_loki_panel_returns_the_rows_it_promises(workload: Workload, dashboard: str, title: str,
                                                                 expr: str) -> None:
    """A panel's query, variables set to the workload's service, run and flag, answers as its title says."""
    flag = "new_prompt"
    query = substitute(expr, {"service": "checkout", "env": ".*", "trace_id": workload.trace_id,
                              "feature_flag": flag, "__range": "1h"})
    expected = panel_answers(workload, workload.records(), flag).get(title)
    assert expected is not None, f"{dashboard}: no expected answer for panel {title!r}: add it to panel_answers()"
    assert_same(query, ask(workload, query), expected())


def test_every_loki_panel_is_checked() -> None:
    """The parametrised test above covers every Loki panel of every dashboard (none hides without targets)."""
    loki_panels = {panel["title"] for dashboard in load_dashboards().values() for panel in panels(dashboard)
                   if (panel.get("datasource") or {}).get("type") == "loki"}
    assert loki_panels == {title for _, title, _ in PANELS} and len(loki_panels) >= 10


def test_the_dashboard_template_variables_list_what_the_sink_wrote(workload: Workload) -> None:
    """label_values(service_name) lists the service; label_values({service_name=~"$service"}, env) its env."""
    variables = [v for dashboard in load_dashboards().values() for v in dashboard["templating"]["list"]
                 if v["type"] == "query" and (v.get("datasource") or {}).get("type") == "loki"]
    assert {v["name"] for v in variables} == {"service", "env"}
    for variable in variables:
        definition = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        found = re.fullmatch(r"label_values\((?:(\{.*\}), )?(\w+)\)", definition)
        assert found is not None, definition
        selector, label = found.groups()
        params = {"query": substitute(selector, {"service": "checkout"})} if selector else {}
        values = workload.loki.api(f"/loki/api/v1/label/{label}/values", workload.tenant, **params)
        expected = {"service_name": ["checkout"], "env": ["test"]}[label]
        assert values == expected, (definition, values)
