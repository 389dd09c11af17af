"""End to end on real servers: `llmmetrics demo` -> Loki and Prometheus (the project's rules) -> Alertmanager.

Run once per Prometheus line (``tests.support.binaries.STACKS``: Prometheus 3.5 LTS with the pinned
Alertmanager, and the Prometheus 2.x a Debian bookworm user has). Everything runs on 127.0.0.1 with free
ports: the demo app with 30% failing calls against its embedded fake LLM, shipping its records to a real Loki
(so the Loki self-metrics are real), a real Prometheus scraping it every second with the generated rule files
and the committed scrape job, a real Alertmanager with the committed routing (only the webhook URLs point at
an HTTP server inside this test). The rules are generated with ``for_override="0s"`` so alerts fire on their
first evaluation, and with a daily budget so the spend forecast exists without 8 days of history (the
history-based forecast is covered by promtool tests).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmmetrics.stack import generate
from llmmetrics.stack import rules as rules_module
from llmmetrics.stack.options import StackOptions, le_matcher
from tests.stack.promql import documented_queries, operands
from tests.stack.servers import free_port, get_json, query, start, stop, wait_for
from tests.stack.shared import REPO
from tests.stack.stack_files import substitute, targets
from tests.support.binaries import STACKS, Stack, binary
from tests.support.loki_server import LokiServer

DEADLINE_SECONDS = 120.0
OPTIONS = StackOptions(for_override="0s", spend_rules_interval="1s", daily_budget_usd=1.0)
# Short windows so one minute of data is enough for every panel's rate()/increase().
PANEL_VARIABLES = {"__rate_interval": "15s", "__range": "5m", "env": ".*", "model": ".*", "service": "llm-app"}
# What another client's classic text format writes for the 2 s bound (Go's client: `le="2"`), served to
# Prometheus next to the demo so the test sees how each Prometheus line stores it.
TEXT_FORMAT_BUCKETS = (
    '# TYPE other_duration_seconds histogram\n'
    'other_duration_seconds_bucket{le="2"} 3\n'
    'other_duration_seconds_bucket{le="+Inf"} 4\n'
    'other_duration_seconds_sum 9\n'
    'other_duration_seconds_count 4\n'
).encode()


class _Receiver(BaseHTTPRequestHandler):
    """Alertmanager's webhook (POST: recorded) and a classic text-format scrape target (GET)."""

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.received.append(json.loads(body))  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(TEXT_FORMAT_BUCKETS)))
        self.end_headers()
        self.wfile.write(TEXT_FORMAT_BUCKETS)

    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class RunningStack:
    stack: Stack
    prom: str
    notifications: list[dict[str, Any]]
    trace_file: Path
    procs: list[Any] = field(default_factory=list)

    def deadline(self) -> float:
        return time.monotonic() + DEADLINE_SECONDS


def _prometheus_config(tmp: Path, app_port: int, am_port: int, receiver_port: int) -> Path:
    rules = tmp / "rules"
    rules.mkdir()
    for relative, text in generate.render(OPTIONS).items():
        if relative.startswith("prometheus/rules/"):
            (rules / Path(relative).name).write_text(text)
    committed = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
    scrape = committed["scrape_configs"][0]
    scrape["static_configs"][0]["targets"] = [f"127.0.0.1:{app_port}"]
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": ["rules/*.yml"],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
        "scrape_configs": [scrape, {"job_name": "text-format", "static_configs": [
            {"targets": [f"127.0.0.1:{receiver_port}"]}]}],
    }
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _alertmanager_config(tmp: Path, webhook_url: str) -> Path:
    config = yaml.safe_load((REPO / "alertmanager" / "alertmanager.yml").read_text())
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook_url
    path = tmp / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _prometheus_command(stack: Stack) -> list[str]:
    """The flags docker-compose.yml starts Prometheus with (but data, listen address and config)."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    flags = [f for f in compose["services"]["prometheus"]["command"]
             if not f.startswith(("--config.file", "--storage.tsdb.path", "--web.listen-address"))]
    return [binary(stack.prometheus), *flags]


@pytest.fixture(scope="module", params=STACKS, ids=[s.name for s in STACKS])
def running(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    stack: Stack = request.param
    tmp = tmp_path_factory.mktemp(stack.name)
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    receiver.received = []  # type: ignore[attr-defined]
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    receiver_port = receiver.server_address[1]
    app_port, prom_port, am_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY" and not k.startswith("LLMMETRICS_")}
    env["PYTHONPATH"] = str(REPO)
    run = RunningStack(stack, f"http://127.0.0.1:{prom_port}", receiver.received,  # type: ignore[attr-defined]
                       tmp / "traces.jsonl")
    loki = LokiServer(tmp / "loki", auth_enabled=False)
    try:
        loki.start()
        run.procs.append(start([sys.executable, "-m", "llmmetrics", "demo", "--host", "127.0.0.1", "--port",
                                str(app_port), "--duration", "0", "--error-rate", "0.3", "--rate", "8", "--seed", "7",
                                "--llm", "fake", "--trace-file", str(run.trace_file), "--quiet",
                                "--loki-url", loki.url], tmp / "demo.log", env))
        run.procs.append(start([binary(stack.alertmanager),
                                f"--config.file={_alertmanager_config(tmp, f'http://127.0.0.1:{receiver_port}/alerts')}",
                                f"--storage.path={tmp / 'am-data'}", f"--web.listen-address=127.0.0.1:{am_port}",
                                "--cluster.listen-address="], tmp / "alertmanager.log"))
        run.procs.append(start([*_prometheus_command(stack),
                                f"--config.file={_prometheus_config(tmp, app_port, am_port, receiver_port)}",
                                f"--storage.tsdb.path={tmp / 'prom-data'}",
                                f"--web.listen-address=127.0.0.1:{prom_port}"], tmp / "prometheus.log"))

        def healthy_targets() -> bool | None:
            active = get_json(f"{run.prom}/api/v1/targets")["data"]["activeTargets"]
            return True if len(active) == 2 and all(t["health"] == "up" for t in active) else None

        wait_for("Prometheus to scrape the demo and the text-format target", healthy_targets, run.deadline(),
                 run.procs)
        yield run
    finally:
        stop(run.procs)
        loki.stop()
        receiver.shutdown()
        receiver.server_close()


@pytest.fixture
def stack_run(running: RunningStack) -> RunningStack:
    """The module's running stack, with its servers recorded against the test that uses them."""
    for name in (running.stack.prometheus, running.stack.alertmanager, "loki"):
        binary(name)
    return running


def test_error_rate_alert_reaches_the_page_webhook(stack_run: RunningStack) -> None:
    """LLMHighErrorRate travels Prometheus -> Alertmanager (page route) -> webhook with its labels and runbook."""
    def delivered() -> dict[str, Any] | None:
        for note in stack_run.notifications:
            for alert in note["alerts"]:
                if alert["labels"].get("alertname") == "LLMHighErrorRate" and alert["status"] == "firing":
                    return note
        return None

    note = wait_for("LLMHighErrorRate at the webhook", delivered, stack_run.deadline(), stack_run.procs)
    assert note["receiver"] == "page"
    alert = next(a for a in note["alerts"] if a["labels"]["alertname"] == "LLMHighErrorRate")
    assert alert["labels"]["severity"] == "page" and alert["labels"]["service"] == "llm-app"
    assert alert["annotations"]["runbook_url"].endswith("#llmhigherrorrate")


def _overview_queries() -> dict[str, str]:
    overview = json.loads(generate.render(OPTIONS)["grafana/dashboards/llm-overview.json"])
    committed = json.loads((REPO / "grafana" / "dashboards" / "llm-overview.json").read_text())
    assert [t["expr"] for _, t in targets(committed, "prometheus")] == [
        t["expr"] for _, t in targets(overview, "prometheus")], "the test options must not change any query"
    return {f"{panel['title']} / {target['refId']}": substitute(target["expr"], PANEL_VARIABLES)
            for panel, target in targets(overview, "prometheus")}


def test_every_overview_panel_query_returns_data(stack_run: RunningStack) -> None:
    """Every PromQL expression of every overview panel returns at least one series."""
    exprs = _overview_queries()
    assert len(exprs) >= 18

    def all_have_data() -> dict[str, int] | None:
        counts = {name: len(query(stack_run.prom, expr)) for name, expr in exprs.items()}
        return counts if all(counts.values()) else None

    try:
        wait_for("every panel query to return data", all_have_data, stack_run.deadline(), stack_run.procs, 2)
    except pytest.fail.Exception:
        pytest.fail(f"panel queries without data: {[n for n, e in exprs.items() if not query(stack_run.prom, e)]}")


def test_every_rule_evaluates_without_error(stack_run: RunningStack) -> None:
    """Every generated rule is loaded and evaluates healthily (e.g. no many-to-many matching at run time)."""
    def evaluated() -> list[dict[str, Any]] | None:
        rules = [r for g in get_json(f"{stack_run.prom}/api/v1/rules")["data"]["groups"] for r in g["rules"]]
        return rules if rules and all(r.get("lastEvaluation", "0001").startswith("20") for r in rules) else None

    rules = wait_for("every rule to be evaluated", evaluated, stack_run.deadline(), stack_run.procs)
    generated = [*rules_module.recording_groups(OPTIONS), rules_module.alert_group(OPTIONS)]
    assert len(rules) == sum(len(group["rules"]) for group in generated) >= 22
    assert [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []


def test_every_documented_promql_query_runs_and_selects_data(stack_run: RunningStack) -> None:
    """Each ```promql block of README.md and docs/*.md is accepted and returns data; a condition (`x > 0`)
    may be false, but every operand it compares returns data, so the condition is not vacuous."""
    documented = documented_queries()
    assert len(documented) >= 3

    def empty_operands() -> list[str] | None:
        empty = []
        for where, expr in documented:
            if not query(stack_run.prom, expr):
                empty += [f"{where}: {part}" for part in operands(expr) if not query(stack_run.prom, part)]
        return empty or None

    deadline = time.monotonic() + 30
    while (empty := empty_operands()) and time.monotonic() < deadline:
        time.sleep(2)
    assert empty is None, f"documented queries whose operands select nothing: {empty}"


def test_latency_exemplars_are_trace_ids_of_the_trace_file(stack_run: RunningStack) -> None:
    """The latency panel's exemplars (OpenMetrics negotiated, exemplar storage on) carry trace ids the demo
    wrote to its trace file."""
    overview = json.loads(generate.render(OPTIONS)["grafana/dashboards/llm-overview.json"])
    latency = next(t for p, t in targets(overview, "prometheus") if p["title"] == "p95 latency by model")
    assert latency["exemplar"] is True

    def exemplar_trace_ids() -> set[str] | None:
        params = {"query": substitute(latency["expr"], PANEL_VARIABLES), "start": str(time.time() - 300),
                  "end": str(time.time() + 5)}
        body = get_json(f"{stack_run.prom}/api/v1/query_exemplars?" + urllib.parse.urlencode(params))
        return {e["labels"]["trace_id"] for series in body["data"] for e in series["exemplars"]} or None

    exemplar_ids = wait_for("exemplars for the latency query", exemplar_trace_ids, stack_run.deadline(),
                            stack_run.procs)
    assert all(len(i) == 32 for i in exemplar_ids)

    def written() -> set[str] | None:
        lines = stack_run.trace_file.read_text(encoding="utf-8").splitlines() if stack_run.trace_file.exists() else []
        return {json.loads(line)["trace_id"] for line in lines if line.strip()} & exemplar_ids or None

    assert wait_for("an exemplar trace id in the demo's trace file", written, stack_run.deadline(), stack_run.procs)


def test_slo_bucket_matcher_selects_the_bound_as_each_prometheus_stores_it(stack_run: RunningStack) -> None:
    """The rules' `le` matcher selects the 2 s bucket both from prometheus_client (OpenMetrics, `le="2.0"`) and
    from a classic text-format `le="2"`, which Prometheus 3 stores normalised as `le="2.0"` and 2.x as written."""
    matcher = le_matcher(2.0)

    def stored(metric: str) -> set[str] | None:
        return {s["metric"]["le"] for s in query(stack_run.prom, f"{metric}{{{matcher}}}")} or None

    deadline = stack_run.deadline()
    assert wait_for("the demo's 2 s bucket", lambda: stored("llm_request_duration_seconds_bucket"), deadline,
                    stack_run.procs) == {"2.0"}
    text_format = wait_for("the text-format 2 s bucket", lambda: stored("other_duration_seconds_bucket"), deadline,
                           stack_run.procs)
    assert text_format == ({"2.0"} if stack_run.stack.prometheus == "prometheus" else {"2"})


def test_scrape_job_stores_no_created_series(stack_run: RunningStack) -> None:
    """The committed scrape job drops prometheus_client's `_created` samples, which would be series of their own,
    while the counters and histograms they belong to are stored."""
    assert query(stack_run.prom, 'count({job="llm-app", __name__=~".+_created"})') == []
    assert query(stack_run.prom, 'llm_requests_total{job="llm-app"}')
