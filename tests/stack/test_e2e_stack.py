"""End to end on real servers: `llmmetrics demo` -> Prometheus (the project's rules) -> Alertmanager -> webhook.

Everything runs on 127.0.0.1 with free ports: the demo app with 30% failing calls against its embedded fake
LLM, a real Prometheus scraping it every second with the generated rule files, a real Alertmanager with the
committed routing (only the webhook URLs point at an HTTP server inside this test). The rules are generated
with ``for_override="0s"`` so alerts fire on their first evaluation, and with a daily budget so the spend
forecast exists without 8 days of history (the history-based forecast is covered by promtool tests).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmmetrics.stack import generate
from llmmetrics.stack.options import StackOptions
from tests.stack.shared import REPO
from tests.stack.stack_files import substitute, targets
from tests.stack.tools import binary
from tests.support.processes import Started, free_port, wait_for

DEADLINE_SECONDS = 90.0
OPTIONS = StackOptions(for_override="0s", spend_rules_interval="1s", daily_budget_usd=1.0)
# Short windows so one minute of data is enough for every panel's rate()/increase().
PANEL_VARIABLES = {"__rate_interval": "15s", "__range": "5m", "env": ".*", "model": ".*", "service": "llm-app"}


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


class _Webhook(BaseHTTPRequestHandler):
    """Alertmanager's webhook receiver: records every notification it gets."""

    received: list[dict[str, Any]]

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.received.append(json.loads(body))  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/alerts", server.received  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


def _prometheus_config(tmp: Path, app_port: int, am_port: int) -> Path:
    rules = tmp / "rules"
    for relative, text in generate.render(OPTIONS).items():
        if relative.startswith("prometheus/rules/"):
            rules.mkdir(exist_ok=True)
            (rules / Path(relative).name).write_text(text)
    committed = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
    scrape = committed["scrape_configs"][0]
    scrape["static_configs"][0]["targets"] = [f"127.0.0.1:{app_port}"]
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": ["rules/*.yml"],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
        "scrape_configs": [scrape],
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


def _query(prom: str, expr: str) -> list[dict[str, Any]]:
    body = _get_json(f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    if body["status"] != "success":
        raise ValueError(f"query failed: {body}")
    return body["data"]["result"]


def _trace_ids(trace_file: Path) -> set[str]:
    if not trace_file.exists():
        return set()
    ids = set()
    for line in trace_file.read_text(encoding="utf-8").splitlines():
        if line.strip():
            ids.add(json.loads(line)["trace_id"])
    return ids


@pytest.mark.timeout(240)
def test_demo_metrics_rules_alerts_and_exemplars_on_real_servers(
        tmp_path: Path, webhook: tuple[str, list[dict[str, Any]]]) -> None:
    """The error-rate alert reaches the webhook, every overview PromQL returns data, and the latency panel's
    exemplar is a trace id the demo wrote to its trace file."""
    webhook_url, notifications = webhook
    app_port, prom_port, am_port = free_port(), free_port(), free_port()
    trace_file = tmp_path / "traces.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY" and not k.startswith("LLMMETRICS_")}
    env["PYTHONPATH"] = str(REPO)
    procs: list[Started] = []
    try:
        procs.append(Started([sys.executable, "-m", "llmmetrics", "demo", "--host", "127.0.0.1", "--port", str(app_port),
                              "--duration", "0", "--error-rate", "0.3", "--rate", "8", "--seed", "7", "--llm", "fake",
                              "--trace-file", str(trace_file), "--quiet"], tmp_path / "demo.log", env))
        procs.append(Started([binary("alertmanager"), f"--config.file={_alertmanager_config(tmp_path, webhook_url)}",
                              f"--storage.path={tmp_path / 'am-data'}", f"--web.listen-address=127.0.0.1:{am_port}",
                              "--cluster.listen-address="], tmp_path / "alertmanager.log"))
        procs.append(Started([binary("prometheus"), f"--config.file={_prometheus_config(tmp_path, app_port, am_port)}",
                              f"--storage.tsdb.path={tmp_path / 'prom-data'}", f"--web.listen-address=127.0.0.1:{prom_port}",
                              "--enable-feature=exemplar-storage"], tmp_path / "prometheus.log"))
        deadline = time.monotonic() + DEADLINE_SECONDS
        prom = f"http://127.0.0.1:{prom_port}"

        def healthy_target() -> bool | None:
            active = _get_json(f"{prom}/api/v1/targets")["data"]["activeTargets"]
            return True if active and all(t["health"] == "up" for t in active) else None

        wait_for("Prometheus to scrape the demo", healthy_target, deadline, procs)

        # 1. The error-rate alert travels Prometheus -> Alertmanager (page route) -> webhook.
        def alert_delivered() -> dict[str, Any] | None:
            for note in notifications:
                for alert in note["alerts"]:
                    if alert["labels"].get("alertname") == "LLMHighErrorRate" and alert["status"] == "firing":
                        return note
            return None

        note = wait_for("LLMHighErrorRate at the webhook", alert_delivered, deadline, procs)
        assert note["receiver"] == "page"
        alert = next(a for a in note["alerts"] if a["labels"]["alertname"] == "LLMHighErrorRate")
        assert alert["labels"]["severity"] == "page" and alert["labels"]["service"] == "llm-app"
        assert alert["annotations"]["runbook_url"].endswith("#llmhigherrorrate")

        # 2. Every PromQL expression of every overview panel returns data.
        overview = json.loads(generate.render(OPTIONS)["grafana/dashboards/llm-overview.json"])
        exprs = {f"{panel['title']} / {target['refId']}": substitute(target["expr"], PANEL_VARIABLES)
                 for panel, target in targets(overview, "prometheus")}
        assert len(exprs) >= 18
        committed = json.loads((REPO / "grafana" / "dashboards" / "llm-overview.json").read_text())
        assert [t["expr"] for _, t in targets(committed, "prometheus")] == [
            t["expr"] for _, t in targets(overview, "prometheus")], "the test options must not change any query"

        def all_panels_have_data() -> dict[str, int] | None:
            counts = {name: len(_query(prom, expr)) for name, expr in exprs.items()}
            return counts if all(counts.values()) else None

        try:
            wait_for("every panel query to return data", all_panels_have_data, deadline, procs, interval=2)
        except pytest.fail.Exception:
            empty = [name for name, expr in exprs.items() if not _query(prom, expr)]
            pytest.fail(f"panel queries without data: {empty}")

        # Every generated rule evaluated without error (e.g. no many-to-many matching at run time).
        groups = _get_json(f"{prom}/api/v1/rules")["data"]["groups"]
        evaluated = [r for g in groups for r in g["rules"]]
        assert len(evaluated) == 21
        assert [(r["name"], r.get("lastError")) for r in evaluated if r["health"] != "ok"] == []

        # 3. The latency panel's exemplars carry trace ids that the demo wrote to its trace file.
        latency = next(t for p, t in targets(overview, "prometheus") if p["title"] == "p95 latency by model")
        assert latency["exemplar"] is True
        params = {"query": substitute(latency["expr"], PANEL_VARIABLES), "start": str(time.time() - 300),
                  "end": str(time.time() + 5)}

        def exemplar_trace_ids() -> set[str] | None:
            body = _get_json(f"{prom}/api/v1/query_exemplars?" + urllib.parse.urlencode(params))
            ids = {e["labels"]["trace_id"] for series in body["data"] for e in series["exemplars"]}
            return ids or None

        exemplar_ids = wait_for("exemplars for the latency query", exemplar_trace_ids, deadline, procs)
        assert all(len(i) == 32 for i in exemplar_ids)
        written = wait_for("an exemplar trace id in the demo's trace file",
                            lambda: (_trace_ids(trace_file) & exemplar_ids) or None, deadline, procs)
        assert written
    finally:
        for proc in procs:
            proc.stop()
