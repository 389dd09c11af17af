"""Multiprocess mode: worker processes write through prometheus_client's files and llmmetrics' exemplar
tables, and one endpoint (``start_http_server``, ``make_wsgi_app``, ``make_asgi_app``) serves their sum with
the newest exemplars, in OpenMetrics when asked for it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import orjson
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

import llmmetrics
from llmmetrics.exemplars import read_exemplars
from llmmetrics.exposition import ExemplarMultiProcessCollector
from llmmetrics.fake import FakeLLMServer
from tests.support.llm import Traced
from tests.support.processes import free_port

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
MESSAGES = [{"role": "user", "content": "hi"}]

# Both workers call gpt-4o-mini (summed on one series) and one model of their own (one exemplar each).
WORKER = textwrap.dedent("""
    import sys, openai, llmmetrics
    llmmetrics.configure(trace_file=sys.argv[2])
    client = llmmetrics.instrument(openai.OpenAI(base_url=sys.argv[1], api_key="k", max_retries=0))
    for _ in range(int(sys.argv[3])):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    client.chat.completions.create(model=sys.argv[4], messages=[{"role": "user", "content": "hi"}])
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                       extra_headers={"x-fake-fault": "rate_limit"})
    except openai.RateLimitError:
        pass
    llmmetrics.shutdown()
""")

SERVER = textwrap.dedent("""
    import sys, llmmetrics
    server, _ = llmmetrics.start_http_server(int(sys.argv[1]), addr="127.0.0.1")
    print("ready", flush=True)
    sys.stdin.readline()
""")


class Workers:
    """Two finished worker processes' multiprocess directory and trace records."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "prom"
        self.root = root

    def records(self, i: int) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in (self.root / f"w{i}.jsonl").read_bytes().splitlines() if line]

    def trace_ids(self, i: int) -> set[str]:
        return {r["trace_id"] for r in self.records(i)}

    def last_call(self, i: int, model: str, status: str = "success") -> dict[str, Any]:
        return [r for r in self.records(i) if r["model"] == model and r["status"] == status][-1]


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory, llm_server: FakeLLMServer) -> Workers:
    root = tmp_path_factory.mktemp("multiproc")
    done = Workers(root)
    done.dir.mkdir()
    env = {**_env_without_llmmetrics(), "PROMETHEUS_MULTIPROC_DIR": str(done.dir)}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, llm_server.base_url, str(root / f"w{i}.jsonl"),
                               str(5 + i), f"w{i}/gpt-4o-mini"], env=env) for i in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    return done


def _env_without_llmmetrics() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LLMMETRICS_")}


def _get(url: str, accept: str | None = None) -> tuple[str, str]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers["Content-Type"], response.read().decode()


def _samples(text: str, openmetrics: bool) -> dict[tuple[str, tuple[tuple[str, str], ...]], Any]:
    parse = parse_openmetrics if openmetrics else parse_text
    return {(s.name, tuple(sorted(s.labels.items()))): s for family in parse(text) for s in family.samples}


def _exemplar_ids(text: str, model: str, status: str = "ok") -> dict[str, str]:
    """sample name → exemplar trace id, for the duration buckets and the cost of ``model``."""
    found = {}
    for (name, labels), sample in _samples(text, openmetrics=True).items():
        labels_d = dict(labels)
        if sample.exemplar is not None and labels_d.get("model") == model and labels_d.get("status", status) == status:
            found[name] = sample.exemplar.labels["trace_id"]
    return found


BASE = (("model", "gpt-4o-mini"), ("operation", "chat"), ("provider", "openai_compatible"))


def test_start_http_server_sums_the_workers_and_serves_their_exemplars(workers: Workers) -> None:
    """Counters and histograms of two processes add up; OpenMetrics carries on each series the exemplar
    of its newest call, whichever worker made it; the classic text format carries none."""
    port = free_port()
    env = {**_env_without_llmmetrics(), "PROMETHEUS_MULTIPROC_DIR": str(workers.dir)}
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        text_type, text = _get(f"http://127.0.0.1:{port}/metrics")
        om_type, om = _get(f"http://127.0.0.1:{port}/metrics", OPENMETRICS)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=10)

    assert text_type.startswith("text/plain") and "trace_id" not in text
    assert om_type.startswith("application/openmetrics-text")
    samples = _samples(text, openmetrics=False)
    assert samples[("llm_requests_total", tuple(sorted(BASE + (("status", "ok"),))))].value == 5 + 6
    assert samples[("llm_requests_total", tuple(sorted(BASE + (("status", "error"),))))].value == 2
    assert samples[("llm_errors_total", tuple(sorted(BASE + (("error_type", "RateLimitError"),))))].value == 2
    assert samples[("llm_request_duration_seconds_count", tuple(sorted(BASE + (("status", "ok"),))))].value == 11

    for i in range(2):  # each worker's own model: the exemplars of its one call
        call = workers.last_call(i, f"w{i}/gpt-4o-mini")
        assert _exemplar_ids(om, f"w{i}/gpt-4o-mini") == {
            "llm_request_duration_seconds_bucket": call["trace_id"], "llm_cost_usd_total": call["trace_id"]}
    shared = _exemplar_ids(om, "gpt-4o-mini")  # the shared series: the newest call of either worker
    newest = max((workers.last_call(i, "gpt-4o-mini") for i in range(2)), key=lambda r: r["ts_ns"] + r["latency_ms"] * 1e6)
    assert shared["llm_cost_usd_total"] == newest["trace_id"]
    errors = _exemplar_ids(om, "gpt-4o-mini", status="error")
    assert errors["llm_request_duration_seconds_bucket"] in workers.trace_ids(0) | workers.trace_ids(1)


@pytest.fixture
def multiproc_env(workers: Workers, monkeypatch: pytest.MonkeyPatch) -> Workers:
    """This test process serves the workers' directory (it never writes to it: its own values are in-process)."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(workers.dir))
    return workers


@pytest.fixture
def wsgi_server() -> Iterator[Any]:
    """Serves a WSGI app on a free loopback port: ``serve(app) -> url``."""
    servers = []

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    def serve(app: Any) -> str:
        server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/metrics"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_make_wsgi_app_serves_every_workers_exemplars(multiproc_env: Workers, wsgi_server: Any) -> None:
    """A /metrics route in the app itself (``make_wsgi_app()``) serves the same merged view as
    start_http_server, exemplars included, when Prometheus asks for OpenMetrics."""
    url = wsgi_server(llmmetrics.make_wsgi_app())
    content_type, om = _get(url, OPENMETRICS)
    assert content_type.startswith("application/openmetrics-text")
    for i in range(2):
        assert _exemplar_ids(om, f"w{i}/gpt-4o-mini")["llm_request_duration_seconds_bucket"] == \
            multiproc_env.last_call(i, f"w{i}/gpt-4o-mini")["trace_id"]
    assert "trace_id" not in _get(url)[1]


def test_the_horizon_follows_the_configuration(multiproc_env: Workers) -> None:
    """The served exemplars are those younger than ``exemplar_horizon_seconds`` as configured in the
    serving process: all of them within an hour, none within a millisecond of their calls."""
    collector = ExemplarMultiProcessCollector(str(multiproc_env.dir))

    def exemplars() -> int:
        return sum(1 for metric in collector.collect() for s in metric.samples if s.exemplar is not None)

    runtime = llmmetrics.configure(registry=CollectorRegistry(), trace_file="", exemplar_horizon_seconds=3600)
    try:
        held = read_exemplars(str(multiproc_env.dir), not_before=0.0)
        assert len(held) >= 2 * 2 + 3  # per worker: own model (duration, cost); shared: ok, error, cost
        assert exemplars() == len(held)
        llmmetrics.configure(registry=CollectorRegistry(), trace_file="", exemplar_horizon_seconds=0.001)
        assert exemplars() == 0
    finally:
        llmmetrics.configure(registry=CollectorRegistry(), trace_file="")
        runtime.close(1)


def test_an_unusable_exemplar_directory_is_counted_never_raised(tmp_path: Path, llm_server: FakeLLMServer,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """When the worker cannot create its exemplar table the calls succeed and are counted as always, and
    each exemplar it could not share is counted in llmmetrics_instrumentation_errors_total{stage="exemplar"}."""
    multiproc = tmp_path / "prom"
    (multiproc / "llmmetrics_exemplars_0.mmap").mkdir(parents=True)  # where the table file would go
    env = {**_env_without_llmmetrics(), "PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
    result = subprocess.run([sys.executable, "-c", WORKER, llm_server.base_url, str(tmp_path / "w.jsonl"), "3", "m"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "exemplars are not shared across worker processes" in result.stderr  # logged once, as a warning
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(multiproc))
    registry = llmmetrics.exposition.metrics_registry()
    assert registry.get_sample_value("llm_requests_total", dict(BASE, status="ok")) == 3
    # 3 priced calls (duration + cost), 1 unpriced model "m" (duration), 1 failed call (duration)
    assert registry.get_sample_value("llmmetrics_instrumentation_errors_total", {"stage": "exemplar"}) == 3 * 2 + 1 + 1


def test_asgi_and_wsgi_apps_negotiate_openmetrics_in_one_process(traced: Traced, client: Any, wsgi_server: Any) -> None:
    """Outside multiprocess mode too, make_asgi_app and make_wsgi_app answer OpenMetrics with the call's
    exemplar to a scraper that asks for it, and the classic text format (no exemplars) otherwise."""
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    trace_id = traced.only_record()["trace_id"]
    url = wsgi_server(llmmetrics.make_wsgi_app(traced.registry))
    assert _exemplar_ids(_get(url, OPENMETRICS)[1], "gpt-4o-mini")["llm_request_duration_seconds_bucket"] == trace_id
    assert "trace_id" not in _get(url)[1]

    asgi = llmmetrics.make_asgi_app(traced.registry)
    for accept, expected_type in ((OPENMETRICS, "application/openmetrics-text"), ("text/plain", "text/plain")):
        content_type, body = asyncio.run(_asgi_get(asgi, accept))
        assert content_type.startswith(expected_type)
        assert (trace_id in body) == (expected_type != "text/plain")


async def _asgi_get(app: Any, accept: str) -> tuple[str, str]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/metrics", "query_string": b"",
             "headers": [(b"accept", accept.encode())]}
    await app(scope, receive, send)
    headers = dict(sent[0]["headers"])
    return headers[b"Content-Type"].decode(), b"".join(m.get("body", b"") for m in sent[1:]).decode()
