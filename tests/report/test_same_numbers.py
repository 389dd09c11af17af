"""A number in the report is the answer ``llmmetrics traces`` gives to the same question, on the local files
and on a real Loki: the workload's calls (the real wrapper, a rotating trace file, the Loki sink) are
reported, the page's own HTML is read back, and each table is compared with the command's JSON answer."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from llmmetrics.cli import main as llmmetrics_main
from tests.support.report_page import ReportPage
from tests.support.workload import CALLS, Workload

SOURCES = ("files", "loki")


def source_args(workload: Workload, source: str) -> list[str]:
    if source == "files":
        return ["--file", str(workload.path)]
    return ["--loki-url", workload.loki.url, "--loki-tenant", workload.tenant, "--service", "checkout"]


def run(args: list[str]) -> str:
    """``llmmetrics ARGS`` through the real entry point; its standard output."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = llmmetrics_main(args)
    assert code == 0, err.getvalue()
    return out.getvalue()


def traces_json(workload: Workload, source: str, *args: str) -> list[dict[str, Any]]:
    output = run(["traces", *source_args(workload, source), "--format", "json", *args])
    return [json.loads(line) for line in output.splitlines()]


@pytest.fixture(scope="module")
def pages(workload: Workload, tmp_path_factory: pytest.TempPathFactory) -> dict[str, ReportPage]:
    """The report of the workload, once from its trace files and once from its tenant of the real Loki."""
    out = tmp_path_factory.mktemp("reports")
    read = {}
    for source in SOURCES:
        path = out / f"{source}.html"
        assert f"wrote {path}" in run(["report", *source_args(workload, source), "-o", str(path)])
        read[source] = ReportPage.read(path)
    return read


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("by", ["model", "user_id", "feature_flags.new_prompt"])
def test_spend_per_group_is_traces_sum_by(workload, pages, source: str, by: str) -> None:
    """Each spend row (calls, exact sum, calls without a cost) is `traces --sum cost --by` for that group."""
    table = pages[source].tables[by]
    answer = traces_json(workload, source, "--sum", "cost", "--by", by)
    assert answer, "traces found nothing"
    assert {row["key"] for row in answer} == {key for key in table if not key.startswith("@")}
    for row in answer:
        shown = table[row["key"]]
        # a group without a priced call has no sum on the page; traces says 0 or null for it
        assert (int(shown["records"]), float(shown["sum"] or 0), int(shown["missing"])) == (
            row["records"], row["sum"] or 0.0, row["missing"]), row["key"]
    assert int(table["@total"]["records"]) == CALLS


@pytest.mark.parametrize("source", SOURCES)
def test_totals_are_traces_sums(workload, pages, source: str) -> None:
    """Calls, errors, tokens and cost at the top are the totals of `traces --sum tokens` / `--sum cost`."""
    totals = pages[source].totals
    (cost,) = traces_json(workload, source, "--sum", "cost")
    (tokens,) = traces_json(workload, source, "--sum", "tokens")
    failed = traces_json(workload, source, "--status", "error", "--limit", "1000")
    assert int(totals["calls"]) == cost["records"] == CALLS
    assert float(totals["cost"]) == cost["sum"] > 0
    assert float(totals["tokens"]) == tokens["sum"]
    assert int(totals["errors"]) == len(failed) > 0


@pytest.mark.parametrize("source", SOURCES)
def test_failed_calls_by_error_type_are_traces_by_error_type(workload, pages, source: str) -> None:
    """The error-type table is `traces --status error --by error.type`."""
    answer = traces_json(workload, source, "--status", "error", "--by", "error.type")
    shown = pages[source].tables["error.type"]
    assert {row["key"]: row["records"] for row in answer} == {k: int(v["records"]) for k, v in shown.items()}
    assert set(shown) == {"RateLimitError", "InternalServerError"}


@pytest.mark.parametrize("source", SOURCES)
def test_slowest_and_failed_calls_are_traces_top_lists(workload, pages, source: str) -> None:
    """The slowest calls are `traces --sort -latency --limit 10` and the failed ones `traces --status error`,
    the same calls in the same order."""
    slowest = [r["call_id"] for r in traces_json(workload, source, "--sort", "-latency", "--limit", "10")]
    failed = [r["call_id"] for r in traces_json(workload, source, "--status", "error", "--limit", "10")]
    assert pages[source].calls["slowest"] == slowest and len(slowest) == 10
    assert pages[source].calls["failed"] == failed and len(failed) == 2


@pytest.mark.parametrize("source", SOURCES)
def test_agent_run_tree_is_traces_trace_id(workload, pages, source: str) -> None:
    """The run with a failed step is drawn as the very tree `traces --trace-id` prints."""
    trees = pages[source].trees
    assert list(trees) == [workload.trace_id]
    expected = run(["traces", *source_args(workload, source), "--trace-id", workload.trace_id])
    assert trees[workload.trace_id] == expected.rstrip("\n")
    assert "run planner" in expected and "run search" in expected and "← failed step" in expected


def test_files_and_loki_give_the_same_page_numbers(pages) -> None:
    """Both backends fill every table with the same numbers (exact sums do not depend on arrival order)."""
    files, loki = pages["files"], pages["loki"]
    assert files.totals == loki.totals
    assert files.tables == loki.tables
    assert files.calls == loki.calls
    assert files.trees == loki.trees


def test_report_file_is_private(pages, tmp_path_factory) -> None:
    """The page holds trace ids, users and errors: it is created 0600 whatever the umask."""
    for path in Path(tmp_path_factory.getbasetemp()).glob("reports*/*.html"):
        assert path.stat().st_mode & 0o777 == 0o600
