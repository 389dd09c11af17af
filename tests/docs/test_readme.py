"""README.md keeps its promises: the two commands are the ones CI and the demo test run, the "Use it"
snippet runs as pasted against the fake LLM, and what it says you then see is what you see."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from llmmetrics.cli import build_parser
from tests.support.processes import free_port
from tests.support.docs import fenced_blocks
from tests.support.lines import OutputLines

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
HEX = re.compile(r"\b[0-9a-f]{32}\b|\b[0-9a-f]{16}\b")


def section(title: str) -> str:
    """The text of the README section ``## title``, up to the next ``## ``."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, flags=re.MULTILINE | re.DOTALL)
    assert match, f"README.md has no section '## {title}'"
    return match.group(1)


def shown(block: str) -> tuple[str, list[str]]:
    """A terminal block as (the command after ``$ ``, the lines it printed)."""
    command, *output = block.splitlines()
    assert command.startswith("$ ")
    return command[2:], output


def test_the_two_commands_are_the_ones_ci_and_the_tests_run() -> None:
    """The demo command installs the package and runs a demo the command line accepts; the test command is
    exactly what .ci/run calls."""
    demo, tests = fenced_blocks(section("Try it"), "sh")
    assert demo == "python3 -m venv .venv && .venv/bin/pip install -q '.[anthropic,report]' && .venv/bin/llmmetrics demo --duration 60"
    args = build_parser().parse_args(demo.split(".venv/bin/llmmetrics ", 1)[1].split())
    assert args.command == "demo" and args.duration == 60
    assert tests == "bash scripts/test.sh"
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1].startswith(tests + " ")


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def fake_llm() -> Iterator[str]:
    """The fake LLM as the README starts it in another shell (its base URL, as it prints it)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "llmmetrics", "fake-server", "--port", str(port)],
                            stdout=subprocess.PIPE, text=True)
    try:
        base_url = OutputLines(proc).next()
        assert base_url == f"http://127.0.0.1:{port}/v1"  # what the README's export line puts for 18080
        yield base_url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _exemplar_shape(line: str) -> tuple[Any, ...]:
    """A bucket line with an exemplar, reduced to what does not change between runs."""
    match = re.fullmatch(r'(\w+)\{([^}]*)\} \S+ # \{([^}]*)\} \S+ \S+', line)
    assert match, line
    labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
    labels.pop("le")
    exemplar = dict(re.findall(r'(\w+)="([^"]*)"', match.group(3)))
    return match.group(1), labels, {k: len(v) for k, v in exemplar.items()}


def _tree_shape(lines: list[str]) -> list[str]:
    """Tree lines with ids, durations, amounts and counts replaced, so two runs of the snippet compare."""
    out = []
    for line in lines:
        line = HEX.sub("<id>", line)
        line = re.sub(r"\d+(\.\d\d)? (ms|s)\b", "<time>", line)
        line = re.sub(r"\$\d+\.\d{6}", "<usd>", line)
        out.append(re.sub(r"\d+", "<n>", line))
    return out


def test_the_use_it_snippet_runs_as_pasted_and_shows_what_the_readme_says(tmp_path: Path, fake_llm: str) -> None:
    """Pasted into `python` with the README's environment, the snippet answers, serves the metrics line with its
    exemplar, writes the record and answers the traces command, each as the README shows them."""
    (shell,) = fenced_blocks(section("Use it"), "sh")
    exports = dict(re.findall(r"(OPENAI_\w+)=(\S+)", shell))
    assert exports == {"OPENAI_BASE_URL": "http://127.0.0.1:18080/v1", "OPENAI_API_KEY": "sk-fake"}
    assert "llmmetrics fake-server --port 18080" in shell
    (snippet,) = fenced_blocks(section("Use it"), "python")
    assert snippet.count("start_http_server(8000)") == 1
    port = free_port()  # 8000 may be taken on the machine running the tests; nothing else is changed
    (tmp_path / "pasted.py").write_text(snippet.replace("start_http_server(8000)", f"start_http_server({port})"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMMETRICS_", "OPENAI_"))}
    env.update(exports, OPENAI_BASE_URL=fake_llm)
    # `python -i`: the snippet runs, then the interpreter waits as after a paste, serving /metrics
    proc = subprocess.Popen([sys.executable, "-i", "pasted.py"], cwd=tmp_path, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert OutputLines(proc).next().strip(), "the snippet printed no answer"
        see = section("What you then see")
        metrics_block, traces_block = fenced_blocks(see)
        (record_block,) = fenced_blocks(see, "json")
        _, (readme_line,) = shown(metrics_block)

        def exemplar_lines() -> list[str]:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                             headers={"Accept": "application/openmetrics-text"})
            with urllib.request.urlopen(request, timeout=10) as response:
                text = response.read().decode()
            return [line for line in text.splitlines() if "_bucket" in line and "trace_id" in line]

        real_lines = wait_for("the exemplar on /metrics", exemplar_lines)
        assert [_exemplar_shape(line) for line in real_lines] == [_exemplar_shape(readme_line)]

        trace_file = tmp_path / "llmmetrics-traces.jsonl"
        wait_for("the run record", lambda: trace_file.exists() and b'"kind":"run"' in trace_file.read_bytes())
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        code = proc.wait(timeout=30)
    assert code == 0 and "Traceback" not in proc.stderr.read()  # type: ignore[union-attr]

    call, run = [json.loads(line) for line in trace_file.read_bytes().splitlines()]
    readme_record = json.loads(record_block)
    assert list(readme_record) == list(call)
    for key in ("kind", "run_name", "service", "env", "provider", "operation", "model", "response_model", "stream",
                "status", "messages", "kwargs", "error", "finish_reason", "tool_calls", "user_id", "request_id",
                "feature_flags", "context", "truncated", "ttft_ms"):
        assert readme_record[key] == call[key], key
    # the fake LLM's realistic latency can pass slow_call_seconds (3 s) on a loaded machine: then it says so
    assert readme_record["sampled"] == "ratio" and call["sampled"] == ("slow" if call["latency_ms"] > 3000 else "ratio")
    for key, value in readme_record.items():
        assert type(value) is type(call[key]), key
        if key.endswith("_id") and isinstance(value, str) and HEX.fullmatch(value):
            assert len(value) == len(call[key]) and HEX.fullmatch(call[key]), key
    assert call["parent_trace_id"] == call["trace_id"] == run["trace_id"]

    command, readme_tree = shown(traces_block)
    assert command.startswith(".venv/bin/llmmetrics traces --trace-id ")
    answer = subprocess.run([sys.executable, "-m", "llmmetrics", "traces", "--trace-id", call["trace_id"]],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert answer.returncode == 0, answer.stderr
    assert _tree_shape(answer.stdout.splitlines()) == _tree_shape(readme_tree)
    assert command.rsplit(" ", 1)[1] == readme_tree[0].split()[1] == readme_record["trace_id"]


def _links(path: Path) -> list[str]:
    return [target for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text(encoding="utf-8"))
            if not re.match(r"[a-z]+://", target)]


def _anchor(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))])
def test_every_link_of_the_documentation_resolves(page: str) -> None:
    """Each relative link in README.md and docs/*.md names a file that exists, and a #section that it has."""
    source = ROOT / page
    for link in _links(source):
        target, _, anchor = link.partition("#")
        path = (source.parent / target).resolve() if target else source
        assert path.exists(), f"{page}: {link} does not exist"
        if anchor and path.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", path.read_text(encoding="utf-8"), flags=re.MULTILINE)
            assert anchor in {_anchor(h) for h in headings}, f"{page}: {link} has no such section"


def test_the_readme_lists_every_documentation_page() -> None:
    """Every page in docs/ is reachable from the README's Documentation list."""
    listed = {link for link in _links(ROOT / "README.md") if link.startswith("docs/")}
    assert {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")} <= {link.partition("#")[0] for link in listed}
