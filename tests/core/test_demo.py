"""`llmmetrics demo`: the README's main command runs with embedded defaults, serves /metrics, writes traces of
both SDKs' calls, says what it sees while it runs, stops on Ctrl-C (twice: at once), and refuses a taken port
plainly."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.samples import Exemplar

from llmmetrics.cli import main as llmmetrics_main
from llmmetrics.demo import Snapshot
from llmmetrics.metrics import LLMMetrics
from llmmetrics.traces.render import plural

from tests.support.lines import OutputLines

from tests.support.processes import free_port

STATUS_LINE = re.compile(r"^\s*\d+ s · [\d,]+ runs? · [\d,]+ calls? \([\d,.]+/s\) · [\d,]+ errors? \(\d+\.\d%\) · "
                         r"p95 (-|\d+ ms|\d+\.\d\d s) · spend \$[\d,]+\.\d{6}$")
STOPPING = "stopping… (Ctrl-C again to quit now)"


def _demo_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMMETRICS_", "OPENAI_"))}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


class Demo(OutputLines):
    """``llmmetrics demo`` in a child process, its stdout read line by line as it comes."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str], *, ignore_sigint: bool = False) -> None:
        def ignore() -> None:  # what a background job (`nohup ... &`) hands its children
            signal.signal(signal.SIGINT, signal.SIG_IGN)

        super().__init__(subprocess.Popen([sys.executable, "-m", "llmmetrics", "demo", *args], cwd=cwd, env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                          preexec_fn=ignore if ignore_sigint else None))

    def finish(self, timeout: float = 120) -> tuple[int, list[str], str]:
        code = self.proc.wait(timeout=timeout)
        assert self.proc.stderr is not None
        return code, self.rest(), self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def demos() -> Iterator[list[Demo]]:
    started: list[Demo] = []
    yield started
    for demo in started:
        demo.kill()


def test_demo_runs_serves_metrics_and_writes_traces(tmp_path: Path, demos: list[Demo], capsys: Any) -> None:
    """A short demo run: agent runs for several users on GPT and Claude models, errors included, metrics scraped
    while it runs, a status line every interval with calls/s, error %, p95 and spend, and at the end commands that
    answer on its traces (seed 3: the second worker's first run is on Claude)."""
    port = free_port()
    trace_file = tmp_path / "traces.jsonl"
    demo = Demo(["--duration", "6", "--port", str(port), "--trace-file", str(trace_file), "--llm", "fake",
                 "--no-latency", "--rate", "20", "--error-rate", "0.2", "--seed", "3", "--status-interval", "1"],
                tmp_path, _demo_env())
    demos.append(demo)
    demo.wait_for(lambda line: STATUS_LINE.match(line) is not None)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    code, output, stderr = demo.finish()
    assert code == 0, (output, stderr)
    assert "llm_requests_total{" in metrics and "llmmetrics_records_emitted_total" in metrics
    assert output[1] == f"  metrics: http://127.0.0.1:{port}/metrics"
    status = [line for line in output if STATUS_LINE.match(line)]
    assert len(status) >= 3, output
    calls = [int(re.search(r"([\d,]+) calls?", line).group(1).replace(",", "")) for line in status]  # type: ignore[union-attr]
    assert calls == sorted(calls) and calls[-1] > calls[0]
    (done,) = [line for line in output if line.startswith("llmmetrics demo: done after ")]
    assert re.search(r"\d+ runs, \d+ calls, \d+ errors? \(\d+\.\d%\), p95 latency .*, spend \$\d+\.\d{6}$", done)
    assert output[output.index(done) + 1] == "Where to look next:"

    records = [orjson.loads(line) for line in trace_file.read_bytes().splitlines()]
    calls_recorded = [r for r in records if r["kind"] == "call"]
    runs = [r for r in records if r["kind"] == "run"]
    assert len(runs) >= 5 and len(calls_recorded) >= 3 * len(runs)
    assert {r["operation"] for r in calls_recorded} >= {"chat", "embeddings"}
    assert {r["provider"] for r in calls_recorded} == {"openai_compatible", "anthropic"}
    assert any(r["status"] == "error" for r in calls_recorded) and any(r["stream"] for r in calls_recorded)
    assert len({r["user_id"] for r in calls_recorded}) >= 3
    assert all(c["trace_id"] in {r["trace_id"] for r in runs} for c in calls_recorded)

    commands = [line.split(":  ", 1)[1].strip() for line in output if "llmmetrics traces" in line]
    assert len(commands) == 3 and all(f"--file {trace_file}" in c for c in commands)
    capsys.readouterr()
    for command in commands:  # each command the demo suggests answers on what it wrote
        assert llmmetrics_main(shlex.split(command)[1:]) == 0
        answer = capsys.readouterr().out
        assert answer.strip() and "no records" not in answer, command
    failed_run = commands[-1].rsplit(" ", 1)[1]
    assert any(r["trace_id"] == failed_run and r["failed_steps"] for r in runs)


def test_the_status_line_counts_in_words_and_reads_the_metrics() -> None:
    """One run, two calls of which one failed: `1 run · 2 calls · 1 error (50.0%)`, p95 and spend from the
    same series Prometheus scrapes."""
    metrics = LLMMetrics(CollectorRegistry())
    series = metrics.series("openai", "gpt-4o-mini", "chat")
    ids = Exemplar({"trace_id": "a" * 32, "span_id": "b" * 16}, 0.5, 0.0)
    series.succeeded(0.5, ids, None, None, (10, 5, None, None, None, None), 0.000123, None)
    series.failed(1.5, ids, None, None, "RateLimitError")
    before = Snapshot(LLMMetrics(CollectorRegistry()), 0, 8.0)
    # p95 of {0.5, 1.5}: rank 1.9 in the (1.28, 2] bucket, linearly as histogram_quantile does
    assert Snapshot(metrics, 1, 10.0).line(before) == ("1 run · 2 calls (1.0/s) · 1 error (50.0%) · p95 1.93 s · "
                                                        "spend $0.000123")
    assert (plural(1, "error"), plural(0, "error"), plural(1200, "call")) == ("1 error", "0 errors", "1,200 calls")


@pytest.mark.parametrize("inherited", ["default", "ignored"])
def test_a_first_ctrl_c_stops_gracefully_and_says_so(tmp_path: Path, demos: list[Demo], inherited: str) -> None:
    """Ctrl-C: `stopping… (Ctrl-C again to quit now)`, then the summary and exit 0 — also when the parent
    handed down an ignored SIGINT, as a background job does."""
    demo = Demo(["--port", str(free_port()), "--trace-file", str(tmp_path / "t.jsonl"), "--llm", "fake",
                 "--no-latency", "--status-interval", "0.2", "--seed", "5"], tmp_path, _demo_env(),
                ignore_sigint=inherited == "ignored")
    demos.append(demo)
    demo.wait_for(lambda line: STATUS_LINE.match(line) is not None)
    demo.proc.send_signal(signal.SIGINT)
    code, output, stderr = demo.finish()
    assert code == 0 and STOPPING in output, (output, stderr)
    assert output[-1].startswith("  metrics (while a demo runs):") and any(l.startswith("llmmetrics demo: done") for l in output)
    assert "Traceback" not in stderr


class StalledLLM:
    """An HTTP endpoint that accepts connections and never answers: the demo's calls hang until their timeout."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.accepted = threading.Event()
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)
            self.accepted.set()

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.mark.parametrize("inherited", ["default", "ignored"])
def test_a_second_ctrl_c_quits_at_once_without_a_traceback(tmp_path: Path, demos: list[Demo], inherited: str) -> None:
    """With every call hanging on a stalled LLM, a graceful stop would wait for them; the second Ctrl-C exits
    at once (status 130) with one line and no traceback."""
    stalled = StalledLLM()
    try:
        demo = Demo(["--port", str(free_port()), "--trace-file", str(tmp_path / "t.jsonl"), "--llm", "openai",
                     "--workers", "2"], tmp_path,
                    _demo_env(OPENAI_API_KEY="sk-test-0123456789abcdef", OPENAI_BASE_URL=stalled.base_url),
                    ignore_sigint=inherited == "ignored")
        demos.append(demo)
        demo.wait_for(lambda line: line.startswith("  Ctrl-C to stop"))
        assert stalled.accepted.wait(60), "no call reached the stalled LLM"
        demo.proc.send_signal(signal.SIGINT)
        demo.wait_for(lambda line: line == STOPPING)
        demo.proc.send_signal(signal.SIGINT)
        code, output, stderr = demo.finish(timeout=30)
    finally:
        stalled.close()
    assert code == 130, (output, stderr)
    assert stderr.strip() == "llmmetrics demo: quitting now" and "Traceback" not in stderr


def test_a_taken_port_is_named_with_the_option_to_change_it(tmp_path: Path) -> None:
    """Port 8000-style clash: one line naming the port, that it is in use and --port; exit 2; nothing written."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "llmmetrics", "demo", "--port", str(port), "--llm", "fake",
                               "--trace-file", str(tmp_path / "t.jsonl"), "--duration", "1"],
                              cwd=tmp_path, env=_demo_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == f"llmmetrics demo: port {port} on 127.0.0.1 is already in use; choose another with --port\n"
    assert list(tmp_path.iterdir()) == []
