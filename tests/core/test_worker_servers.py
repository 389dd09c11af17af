"""Exemplars across worker processes, on the servers users run: gunicorn with uvicorn workers and
``uvicorn --workers``, three workers each, scraped by a real Prometheus with exemplar storage.

Every call gets a model of its own, so each series holds exactly one call and its exemplar must be exactly
that call: its trace id, in the ``{pid}`` trace file of the worker that answered it.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from collections.abc import Iterator

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from llmmetrics.fake import FakeLLMServer, LatencyModel
from tests.support.processes import wait_for
from tests.support.prometheus import Prometheus
from tests.support.worker_servers import SERVERS, WORKERS, WorkerServer

DURATION = "llm_request_duration_seconds_bucket"
COST = "llm_cost_usd_total"


@pytest.fixture(scope="module")
def llm_taking_100ms() -> Iterator[FakeLLMServer]:
    """Answers after 0.1 s, so that a worker told to stop after N requests cannot take many more meanwhile."""
    latency = LatencyModel(time_to_first_token=(0.1, 0.1), per_token=(0.0, 0.0), slow_share=0.0,
                           slow_extra_seconds=(0.0, 0.0))
    with FakeLLMServer(seed=12, latency=latency) as server:
        yield server


def _models(prefix: str, n: int) -> list[str]:
    # "<tenant>/gpt-4o-mini" is priced as gpt-4o-mini, so every call also carries a cost exemplar
    return [f"{prefix}-{i}/gpt-4o-mini" for i in range(n)]


def _exemplars_by_model(text: str) -> dict[tuple[str, str], set[str]]:
    """(sample name, model) → trace ids of the exemplars on /metrics (OpenMetrics)."""
    found: dict[tuple[str, str], set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.exemplar is not None and sample.name in (DURATION, COST):
                found.setdefault((sample.name, sample.labels["model"]), set()).add(sample.exemplar.labels["trace_id"])
    return found


def _prometheus_exemplars(prom: Prometheus, since: float, answers: list[dict[str, Any]]) -> dict[tuple[str, str], str] | None:
    """(metric, model) → trace id, once Prometheus holds an exemplar of both metrics for every answered model."""
    models = {a["model"] for a in answers}
    found: dict[tuple[str, str], str] = {}
    for metric in (DURATION, COST):
        for exemplar in prom.exemplars(metric, since):
            if exemplar["labels"].get("model") in models:
                found[(metric, exemplar["labels"]["model"])] = exemplar["trace_id"]
    return found if len(found) == 2 * len(models) else None


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", SERVERS)
def test_prometheus_gets_every_workers_exemplars_and_a_killed_workers_stay(
        kind: str, tmp_path: Path, llm_server: FakeLLMServer) -> None:
    """Prometheus stores, for each model, the exemplar of the one call made for it, whichever worker made
    it, and that trace id is in that worker's {pid} trace file; a worker killed with SIGKILL keeps its
    exemplars on /metrics, and its replacement takes over its table file instead of adding one."""
    deadline = time.monotonic() + 240
    with WorkerServer(kind, tmp_path, llm_server.base_url) as app, Prometheus(tmp_path, app.address) as prom:
        first_workers = app.wait_ready(deadline)
        prom.wait_until_scraped(deadline)
        since = time.time() - 5

        # 1. concurrent requests, each one LLM call through the real openai client
        first = app.chat_concurrently(_models("first", 24))
        assert {a["pid"] for a in first} <= first_workers
        traced = app.wait_traced(first, deadline)
        assert all(traced[a["trace_id"]] == a["pid"] for a in first)  # in the trace file of the worker that answered
        stored = wait_for("Prometheus to store an exemplar per model", lambda: _prometheus_exemplars(prom, since, first),
                          deadline, [app.server, prom.server])
        by_model = {a["model"]: a for a in first}
        assert stored == {(m, model): by_model[model]["trace_id"] for m in (DURATION, COST) for model in by_model}

        # 2. the busiest worker is killed; gunicorn/uvicorn start a replacement
        served = [a["pid"] for a in first]
        victim = max(set(served), key=served.count)
        os.kill(victim, signal.SIGKILL)
        workers = app.wait_ready(deadline, without={victim})
        replacement = (workers - first_workers).pop()
        # its exemplars are still served (until the horizon), merged with the live workers'
        on_metrics = _exemplars_by_model(app.openmetrics())
        for answer in first:
            for metric in (DURATION, COST):
                assert on_metrics[(metric, answer["model"])] == {answer["trace_id"]}

        # 3. more calls, until the replacement has made some: it records into the killed worker's table file
        second: list[dict[str, Any]] = []
        for _ in range(20):
            second += app.chat_concurrently(_models(f"second-{len(second)}", 6), concurrency=3)
            if any(a["pid"] == replacement for a in second):
                break
        else:
            pytest.fail(f"the replacement worker {replacement} answered none of {len(second)} calls")
        traced = app.wait_traced(second, deadline)
        assert all(traced[a["trace_id"]] == a["pid"] for a in second)
        stored = wait_for("Prometheus to store the new exemplars", lambda: _prometheus_exemplars(prom, since, second),
                          deadline, [app.server, prom.server])
        assert all(stored[(m, a["model"])] == a["trace_id"] for a in second for m in (DURATION, COST))
        exemplar_pids = {traced_pid for traced_pid in (app.traced_calls()[t] for t in stored.values())}
        assert replacement in exemplar_pids and len(exemplar_pids) >= 2  # merged across processes
        assert len(app.exemplar_files()) <= WORKERS


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", SERVERS)
def test_recycled_workers_leave_no_more_exemplar_files_than_workers(
        kind: str, tmp_path: Path, llm_taking_100ms: FakeLLMServer) -> None:
    """With every worker recycled after 2 requests, many more pids make calls than there are workers, yet
    the exemplar table files never outnumber the workers and /metrics still serves every recycled worker's
    exemplars."""
    deadline = time.monotonic() + 240
    with WorkerServer(kind, tmp_path, llm_taking_100ms.base_url, recycle_after=2) as app:
        app.wait_ready(deadline)
        answers = [app.chat(model, deadline) for model in _models("recycled", 30)]
        pids = {a["pid"] for a in answers}
        # a worker stops within ~0.1 s of its limit: 2 requests, rarely 3, never 6
        assert len(pids) >= 2 * WORKERS
        app.wait_traced(answers, deadline)
        assert len(app.exemplar_files()) <= WORKERS
        on_metrics = wait_for("a live worker to serve /metrics", lambda: _exemplars_by_model(app.openmetrics()),
                              deadline, [app.server])
        assert all(on_metrics[(DURATION, a["model"])] == {a["trace_id"]} for a in answers)
        assert app.every_worker_pid() >= pids
