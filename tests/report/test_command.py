"""`llmmetrics report` as a user runs it: what it writes for edge cases (nothing matched, unpriced models, a flag
first seen mid-file, hostile strings), its exit codes and messages, and that it needs the report extra only."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from llmmetrics.cli import main as llmmetrics_main
from tests.support.loki_server import free_port
from tests.support.report_page import ReportPage

REPO = Path(__file__).resolve().parents[2]
T0 = 1_800_000_000 * 10**9


def call(i: int, **fields: Any) -> dict[str, Any]:
    """A call record with the wrapper's fields that matter here; one second apart."""
    record = {"kind": "call", "call_id": f"{i:032x}", "trace_id": f"{i:032x}", "span_id": f"{i:016x}",
              "ts_ns": T0 + i * 10**9, "service": "checkout", "env": "prod", "provider": "openai",
              "operation": "chat", "model": "gpt-4o-mini", "status": "success", "latency_ms": 100.0 + i,
              "input_tokens": 10, "output_tokens": 5, "total_tokens": 15, "cost_usd": 0.001, "error": None,
              "user_id": "u-1", "feature_flags": {}, "sampled": "ratio"}
    record.update(fields)
    return record


def write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def report(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = llmmetrics_main(["report", *args])
    return code, out.getvalue(), err.getvalue()


def traces_json(*args: str) -> list[dict[str, Any]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert llmmetrics_main(["traces", *args, "--format", "json"]) == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_unpriced_calls_are_counted_apart_never_as_zero(tmp_path: Path) -> None:
    """A model missing from the price table shows n/a and its unpriced calls, and stays out of the averages."""
    traces = write(tmp_path / "t.jsonl", [call(0), call(1, model="my-finetune", cost_usd=None),
                                          call(2, model="my-finetune", cost_usd=None),
                                          call(3, status="error", cost_usd=None, error={"type": "RateLimitError"})])
    code, _, err = report("--file", str(traces), "-o", str(tmp_path / "r.html"))
    assert code == 0, err
    page = ReportPage.read(tmp_path / "r.html")
    finetune = page.tables["model"]["my-finetune"]
    assert (finetune["records"], finetune["priced"], finetune["unpriced"]) == ("2", "0", "2")
    row = page.text.split('data-key="my-finetune"')[1].split("</tr>")[0]
    assert "n/a" in row and "$0<" not in row
    assert "+ 2 unpriced calls, not counted as $0" in page.text
    assert "2 unpriced calls not in the average" in page.text
    assert page.tables["model"]["gpt-4o-mini"]["unpriced"] == "0"  # the failed call is not "unpriced"
    assert float(page.totals["cost"]) == 0.001


def test_flag_first_seen_mid_file_counts_earlier_calls_as_none(tmp_path: Path) -> None:
    """Calls read before a flag first appears are its (none) group, as `traces --by feature_flags.X` has it."""
    records = [call(i) for i in range(3)] + [call(3 + i, feature_flags={"beta": i % 2 == 0}) for i in range(4)]
    traces = write(tmp_path / "t.jsonl", records)
    assert report("--file", str(traces), "-o", str(tmp_path / "r.html"))[0] == 0
    table = ReportPage.read(tmp_path / "r.html").tables["feature_flags.beta"]
    expected = traces_json("--file", str(traces), "--sum", "cost", "--by", "feature_flags.beta")
    assert {r["key"]: (r["records"], r["sum"]) for r in expected} == {
        k: (int(v["records"]), float(v["sum"])) for k, v in table.items() if not k.startswith("@")}
    assert table["(none)"]["records"] == "3"


def test_strings_from_records_are_escaped_and_nothing_can_run(tmp_path: Path) -> None:
    """A user id or error message holding HTML is shown as text; the page has no script and forbids any."""
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    traces = write(tmp_path / "t.jsonl", [
        call(0, user_id=hostile, model=hostile),
        call(1, status="error", cost_usd=None, error={"type": hostile, "message": hostile, "status_code": 500})])
    assert report("--file", str(traces), "-o", str(tmp_path / "r.html"))[0] == 0
    text = (tmp_path / "r.html").read_text()
    assert "<script" not in text and "<img" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    assert "default-src 'none'" in text


def test_nothing_matched_still_writes_a_page(tmp_path: Path) -> None:
    """Filters that match no record give a page saying so (zero calls), not an error."""
    traces = write(tmp_path / "t.jsonl", [call(0)])
    code, out, _ = report("--file", str(traces), "--model", "no-such-model", "-o", str(tmp_path / "r.html"))
    assert code == 0 and "wrote" in out
    page = ReportPage.read(tmp_path / "r.html")
    assert page.totals["calls"] == "0" and set(page.panels.values()) == {0}
    assert "no calls in range" in page.text and "no agent run had a failed step" in page.text


def test_exit_codes_and_messages(tmp_path: Path) -> None:
    """Bad options exit 2 naming the option; a missing trace file or output directory exits 1, saying why."""
    traces = write(tmp_path / "t.jsonl", [call(0)])
    code, _, err = report("--file", str(traces), "--top", "0")
    assert code == 2 and "--top" in err
    code, _, err = report("--file", str(traces), "--error-rate-threshold", "5")
    assert code == 2 and "error_rate_threshold must be a ratio" in err
    code, _, err = report("--file", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "r.html"))
    assert code == 1 and "no trace file at" in err
    code, _, err = report("--file", str(traces), "-o", str(tmp_path / "no-dir" / "r.html"))
    assert code == 1 and "No such file or directory" in err
    assert not (tmp_path / "r.html").exists()


def run_blocking(modules: list[str], args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The command in a fresh interpreter where importing ``modules`` fails, as when they are not installed."""
    code = ("import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in modules)
            + "from llmmetrics.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


def test_without_the_extra_it_says_which_to_install(tmp_path: Path) -> None:
    """No pygal: exit 2 with the pip command; the rest of llmmetrics still runs."""
    traces = write(tmp_path / "t.jsonl", [call(0)])
    done = run_blocking(["pygal"], ["report", "--file", str(traces)], tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == ("llmmetrics report needs the report extra (pygal is missing): "
                                   "pip install 'llmmetrics[report]'")
    assert not (tmp_path / "llmmetrics-report.html").exists()
    assert run_blocking(["pygal"], ["traces", "--file", str(traces)], tmp_path).returncode == 0


def test_the_demo_without_the_extra_says_which_to_install(tmp_path: Path) -> None:
    """The demo still runs without pygal, and its last words say how to get the page."""
    done = run_blocking(["pygal"], ["demo", "--duration", "2", "--no-latency", "--quiet", "--llm", "fake",
                                    "--port", str(free_port())], tmp_path)
    assert done.returncode == 0, done.stderr
    assert ("  this run as one HTML page:    llmmetrics report needs the report extra (pygal is missing): "
            "pip install 'llmmetrics[report]'") in done.stdout.splitlines()


def test_the_report_needs_nothing_of_the_stack_extra(tmp_path: Path) -> None:
    """Without grafanalib and PyYAML (the stack extra) the report is written with the stack's thresholds."""
    traces = write(tmp_path / "t.jsonl", [call(0), call(1)])
    done = run_blocking(["grafanalib", "yaml"], ["report", "--file", str(traces), "-o", "r.html"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "5% threshold" in (tmp_path / "r.html").read_text()
