"""`llmmetrics traces` over what the real wrapper writes: the instrumented openai client against the fake LLM
server, records rotated across many small files by the file sink, and the same calls shipped by the Loki sink
to a real Loki and read back through query_range.

Each filter's answer is compared with a reference computed independently (``json`` module, plain Python
over every line of every file), plus absolute checks where the calls made fix the answer.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llmmetrics.cli import main as llmmetrics_main
from llmmetrics.traces.local import trace_files
from tests.support.workload import Workload, read_records

REPO = Path(__file__).resolve().parents[2]


def main(args: list[str]) -> int:
    """`llmmetrics traces ARGS` through the real command-line entry point."""
    return llmmetrics_main(["traces", *args])


@pytest.fixture(scope="module")
def written(workload: Workload) -> tuple[Path, str]:
    return workload.path, workload.trace_id


all_records = read_records


def cli_json(capsys, path: Path, *args: str) -> list[dict[str, Any]]:
    code = main(["--file", str(path), "--format", "json", "--limit", "1000", *args])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "malformed" not in captured.err
    return [json.loads(line) for line in captured.out.splitlines()]


Reference = Callable[[dict[str, Any]], bool]
CALL: Reference = lambda r: r["kind"] == "call"
CASES: list[tuple[list[str], Reference]] = [
    ([], CALL),
    (["--status", "error"], lambda r: CALL(r) and r["status"] == "error"),
    (["--status", "success"], lambda r: CALL(r) and r["status"] == "success"),
    (["--model", "gpt-4o"], lambda r: CALL(r) and r["model"] == "gpt-4o"),
    (["--provider", "openai"], lambda r: CALL(r) and r["provider"] == "openai"),
    (["--operation", "embeddings"], lambda r: CALL(r) and r["operation"] == "embeddings"),
    (["--operation", "responses"], lambda r: CALL(r) and r["operation"] == "responses"),
    (["--error-type", "RateLimitError"], lambda r: CALL(r) and (r["error"] or {}).get("type") == "RateLimitError"),
    (["--user", "u-7"], lambda r: CALL(r) and r["user_id"] == "u-7"),
    (["--request-id", "r-9"], lambda r: CALL(r) and r["request_id"] == "r-9"),
    (["--min-latency", "800ms"], lambda r: CALL(r) and r["latency_ms"] >= 800),
    (["--max-latency", "800ms"], lambda r: CALL(r) and r["latency_ms"] <= 800),
    (["--min-cost", "0.000001"], lambda r: CALL(r) and r["cost_usd"] is not None and r["cost_usd"] >= 0.000001),
    (["--max-cost", "0.000001"], lambda r: CALL(r) and r["cost_usd"] is not None and r["cost_usd"] <= 0.000001),
    (["--since", "1h"], CALL),
    (["--until", "1h"], lambda r: False),
    (["--grep", "refund policy"], lambda r: CALL(r) and "refund policy" in json.dumps(r)),
    (["--kind", "run"], lambda r: r["kind"] == "run"),
    (["--kind", "all", "--service", "checkout", "--env", "test"], lambda r: True),
]


class TestWrapperFiles:
    def test_the_small_file_rotated_and_every_record_is_read(self, written, capsys) -> None:
        """The sink rotated into several backups; the scan reads them all, in order, with nothing malformed."""
        path, _ = written
        assert len(trace_files(path)) >= 4
        records = all_records(path)
        assert sum(r["kind"] == "call" for r in records) == 21 and sum(r["kind"] == "run" for r in records) == 2
        got = cli_json(capsys, path, "--kind", "all", "--sort", "time")
        assert [r["ts_ns"] for r in got] == sorted(r["ts_ns"] for r in records)
        assert sorted(r.get("call_id") or r["span_id"] for r in got) == sorted(
            r.get("call_id") or r["span_id"] for r in records)

    @pytest.mark.parametrize(("args", "reference"), CASES, ids=[" ".join(a) or "none" for a, _ in CASES])
    def test_each_filter_matches_the_reference(self, written, capsys, args, reference) -> None:
        """Every filter over the wrapper's real files returns exactly what a plain reading of all lines says."""
        path, _ = written
        expected = sorted(r.get("call_id") or r["span_id"] for r in all_records(path) if reference(r))
        got = sorted(r.get("call_id") or r["span_id"] for r in cli_json(capsys, path, *args))
        assert got == expected

    def test_the_calls_made_fix_these_answers(self, written, capsys) -> None:
        """Absolute counts from the calls made: 2 failures, 1 rate limit, 1 stream, 1 slow call, 4 calls of u-7."""
        path, _ = written
        assert len(cli_json(capsys, path, "--status", "error")) == 2
        (limited,) = cli_json(capsys, path, "--error-type", "RateLimitError")
        assert limited["error"]["status_code"] == 429 and limited["user_id"] == "u-42"
        (streamed,) = cli_json(capsys, path, "--model", "gpt-4o", "--status", "success")
        assert streamed["stream"] is True
        slowest = cli_json(capsys, path, "--sort", "-latency", "--limit", "1")
        assert slowest[0]["latency_ms"] >= 1000 and slowest[0]["user_id"] == "u-7"
        assert len(cli_json(capsys, path, "--user", "u-7")) == 4

    def test_cost_per_feature_flag(self, written, capsys) -> None:
        """--sum cost_usd --by feature_flags.new_prompt totals equal the reference sums per flag."""
        path, _ = written
        code = main(["--file", str(path), "--sum", "cost_usd", "--by", "feature_flags.new_prompt", "--format", "json"])
        rows = {r["key"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
        assert code == 0
        calls = [r for r in all_records(path) if r["kind"] == "call"]
        for key, flag in (("true", True), ("false", False)):
            mine = [r for r in calls if (r.get("feature_flags") or {}).get("new_prompt") is flag]
            assert rows[key]["records"] == len(mine)
            assert rows[key]["sum"] == pytest.approx(sum(r["cost_usd"] or 0 for r in mine))
            assert rows[key]["missing"] == sum(r["cost_usd"] is None for r in mine)
        assert rows["(none)"]["records"] == 12  # the filler calls were made outside bind_context

    def test_the_agent_run_tree(self, written, capsys) -> None:
        """--trace-id draws planner → (call, search → failed call, call), the failure marked, totals summed."""
        path, trace_id = written
        code = main(["--file", str(path), "--trace-id", trace_id])
        out = capsys.readouterr().out
        assert code == 0
        lines = out.splitlines()
        assert lines[0] == f"trace {trace_id}"
        assert "run planner" in lines[1] and lines[1].startswith("└─ ")
        assert lines[2].startswith("   ├─ ✓ chat gpt-4o-mini")
        assert lines[3].startswith("   ├─ ") and "run search" in lines[3]
        assert lines[4].startswith("   │  └─ ✗ chat gpt-4o") and "InternalServerError" in lines[4]
        assert lines[5].startswith("   └─ ✓ chat gpt-4o-mini")
        assert lines[6].startswith("totals: 3 calls, 1 failed")
        assert len(lines) == 7


def run_both(capsys, monkeypatch, workload: Workload, args: list[str]) -> tuple[str, str]:
    """The command's output over the workload's trace files and over its tenant of the real Loki."""
    monkeypatch.setenv("LLMMETRICS_SERVICE", "checkout")
    monkeypatch.delenv("LLMMETRICS_LOKI_URL", raising=False)
    outputs = []
    for source in (["--file", str(workload.path)], ["--loki-url", workload.loki.url, "--loki-tenant", workload.tenant]):
        code = main([*args, *source])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        outputs.append(captured.out)
    return outputs[0], outputs[1]


class TestLokiAnswersEqualTheFiles:
    @pytest.mark.parametrize(("args", "reference"), CASES, ids=[" ".join(a) or "none" for a, _ in CASES])
    def test_each_filter_gives_the_same_records_from_loki(self, workload, capsys, monkeypatch, args, reference) -> None:
        """Every filter asked of the real Loki returns exactly the records it returns from the local files."""
        local, loki = run_both(capsys, monkeypatch, workload, [*args, "--format", "json", "--limit", "1000"])
        expected = sorted(r.get("call_id") or r["span_id"] for r in workload.records() if reference(r))
        assert sorted(r.get("call_id") or r["span_id"] for r in map(json.loads, loki.splitlines())) == expected
        assert loki == local

    def test_each_documented_question_has_the_same_answer_from_loki(self, workload, capsys, monkeypatch) -> None:
        """Every command of docs/traces.md (its question table and --print-logql examples) prints the same over
        Loki as over the files."""
        trace_id = workload.trace_id
        page = (REPO / "docs" / "traces.md").read_text()
        table = re.findall(r"^\| [^|]+ \| `(llmmetrics traces [^`]+)` \|$", page, flags=re.MULTILINE)
        assert len(table) >= 10
        # and the --print-logql examples, asked for their answer instead of their LogQL
        printed = re.findall(r"^\$ (llmmetrics traces .+) --print-logql$", page, flags=re.MULTILINE)
        assert len(printed) >= 5
        table += printed
        samples = {"4bf92f3577b34da6a3ce929d0e0e4736": trace_id, "<trace_id from the exemplar>": trace_id,
                   "r-8812": "r-9", "--min-latency 3s": "--min-latency 800ms"}  # the slow call takes 1 s
        empty = []
        for command in table:
            command = command.split(" \\| ")[0]  # `… --format json \| jq .error`: the command's own part
            for sample, value in samples.items():
                command = command.replace(sample, value)
            local, loki = run_both(capsys, monkeypatch, workload, shlex.split(command)[2:])
            assert loki == local, command
            if not local.strip():
                empty.append(command)
        assert empty == [], "these questions found nothing in the workload"
