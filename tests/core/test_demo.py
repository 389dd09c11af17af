"""`llmmetrics demo`: the README's main command runs with embedded defaults, serves /metrics, writes traces of
both SDKs' calls."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson

from .test_multiprocess import _free_port


def test_demo_runs_serves_metrics_and_writes_traces(tmp_path: Path) -> None:
    """A short demo run: agent runs for several users on GPT and Claude models, errors included, metrics scraped
    while it runs (seed 3: the second worker's first run is on Claude)."""
    port = _free_port()
    trace_file = tmp_path / "traces.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMMETRICS_", "OPENAI_"))}
    proc = subprocess.Popen([sys.executable, "-m", "llmmetrics", "demo", "--duration", "6", "--port", str(port),
                             "--trace-file", str(trace_file), "--llm", "fake", "--no-latency", "--rate", "20",
                             "--error-rate", "0.2", "--seed", "3"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    metrics = ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "llm_requests_total{" not in metrics:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                metrics = response.read().decode()
        except OSError:
            time.sleep(0.2)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "llm_requests_total{" in metrics and "llmmetrics_records_emitted_total" in metrics
    assert "llmmetrics demo: done:" in output
    records = [orjson.loads(line) for line in trace_file.read_bytes().splitlines()]
    calls = [r for r in records if r["kind"] == "call"]
    runs = [r for r in records if r["kind"] == "run"]
    assert len(runs) >= 5 and len(calls) >= 3 * len(runs)
    assert {r["operation"] for r in calls} >= {"chat", "embeddings"}
    assert {r["provider"] for r in calls} == {"openai_compatible", "anthropic"}
    assert any(r["status"] == "error" for r in calls) and any(r["stream"] for r in calls)
    assert len({r["user_id"] for r in calls}) >= 3
    assert all(c["trace_id"] in {r["trace_id"] for r in runs} for c in calls)
