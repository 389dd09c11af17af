"""`llmmetrics traces` over local JSONL files built record-for-record from the interface spec.

The records here carry every field of the spec's call and run records, serialised with orjson as the
wrapper does. Tests over files the real wrapper writes live in ``test_traces_wrapper.py``.
"""

from __future__ import annotations

import io
import json
import random
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from llmmetrics.cli import main as llmmetrics_main
from llmmetrics.traces import local
from llmmetrics.traces.aggregate import aggregate
from llmmetrics.traces.filters import Query, SortOrder
from llmmetrics.traces.local import LocalScan, NoTraceFiles, trace_files
from llmmetrics.traces.render import render_table


def main(args: list[str]) -> int:
    """`llmmetrics traces ARGS` through the real command-line entry point."""
    return llmmetrics_main(["traces", *args])

NOW = datetime.now(timezone.utc).replace(microsecond=0)
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def call_record(n: int, *, ago: timedelta, **fields: Any) -> dict[str, Any]:
    """A call record with every spec field; ``n`` makes its ids unique and recognisable (call_id ends in n)."""
    start = NOW - ago
    record: dict[str, Any] = {
        "kind": "call",
        "call_id": f"{n:032x}",
        "trace_id": f"{n + 1000:032x}",
        "span_id": f"{n:016x}",
        "parent_span_id": None,
        "parent_trace_id": None,
        "run_name": None,
        "timestamp": start.isoformat(),
        "ts_ns": _ns(start),
        "service": "checkout",
        "env": "prod",
        "provider": "openai",
        "operation": "chat",
        "model": "gpt-4o-mini",
        "response_model": "gpt-4o-mini-2024-07-18",
        "stream": False,
        "status": "success",
        "latency_ms": 800.0,
        "ttft_ms": None,
        "input_tokens": 100,
        "output_tokens": 20,
        "cached_input_tokens": 0,
        "reasoning_tokens": 0,
        "total_tokens": 120,
        "cost_usd": 0.000027,
        "error": None,
        "messages": [{"role": "user", "content": f"question {n}"}],
        "kwargs": {"temperature": 0.2},
        "output": f"answer {n}",
        "finish_reason": "stop",
        "tool_calls": None,
        "provider_request_id": f"req_{n:032x}",
        "user_id": "u-1",
        "request_id": f"r-{n}",
        "feature_flags": {"new_prompt": False},
        "context": {},
        "sampled": "ratio",
        "truncated": False,
    }
    record.update(fields)
    return record


def failed(type_: str, status_code: int | None, message: str = "boom") -> dict[str, Any]:
    return {"status": "error", "error": {"type": type_, "message": message, "status_code": status_code},
            "output": None, "finish_reason": None, "input_tokens": None, "output_tokens": None,
            "cached_input_tokens": None, "reasoning_tokens": None, "total_tokens": None, "cost_usd": None,
            "sampled": "error"}


def run_record(*, trace_id: str, span_id: str, calls: list[dict[str, Any]], ago: timedelta, name: str,
               parent_span_id: str | None = None, **fields: Any) -> dict[str, Any]:
    """A run record summarising ``calls`` the way trace_run does."""
    start = NOW - ago
    steps = [{k: c.get(k) for k in ("call_id", "span_id", "operation", "model", "status", "latency_ms",
                                    "input_tokens", "output_tokens", "cost_usd")}
             | {"error_type": (c.get("error") or {}).get("type")} for c in calls]
    failing = next((c for c in calls if c["status"] == "error"), None)
    record = {
        "kind": "run", "run_name": name, "trace_id": trace_id, "span_id": span_id,
        "parent_span_id": parent_span_id, "timestamp": start.isoformat(), "ts_ns": _ns(start),
        "service": "checkout", "env": "prod", "status": "error" if failing else "success",
        "latency_ms": 5000.0, "model_wait_ms": sum(c["latency_ms"] for c in calls), "steps": steps,
        "step_count": len(steps),
        "input_tokens": sum(c.get("input_tokens") or 0 for c in calls),
        "output_tokens": sum(c.get("output_tokens") or 0 for c in calls),
        "cached_input_tokens": 0, "reasoning_tokens": 0,
        "cost_usd": sum(c["cost_usd"] for c in calls if c.get("cost_usd") is not None),
        "unpriced_steps": sum(1 for c in calls if c.get("cost_usd") is None),
        "error": {"type": failing["error"]["type"], "message": failing["error"]["message"]} if failing else None,
        "failed_call_id": failing["call_id"] if failing else None,
        "user_id": "u-42", "request_id": "r-run", "feature_flags": {"new_prompt": True}, "context": {},
    }
    record.update(fields)
    return record


def agent_run() -> list[dict[str, Any]]:
    """A planner run: two calls, a nested 'search' run with one failing call, then one more call."""
    inside = {"trace_id": TRACE, "parent_trace_id": None, "run_name": "planner", "user_id": "u-42",
              "feature_flags": {"new_prompt": True}}
    c1 = call_record(101, ago=timedelta(minutes=10), parent_span_id="a" * 16, latency_ms=1200.0, **inside)
    c2 = call_record(102, ago=timedelta(minutes=10) - timedelta(seconds=2), parent_span_id="a" * 16,
                     latency_ms=900.0, model="gpt-4o", cost_usd=0.0031, **inside)
    c3 = call_record(103, ago=timedelta(minutes=10) - timedelta(seconds=4), parent_span_id="b" * 16,
                     latency_ms=30000.0, **(inside | {"run_name": "search"}), **failed("APITimeoutError", None))
    c4 = call_record(104, ago=timedelta(minutes=10) - timedelta(seconds=40), parent_span_id="a" * 16,
                     latency_ms=400.0, **inside)
    nested = run_record(trace_id=TRACE, span_id="b" * 16, parent_span_id="a" * 16, calls=[c3], name="search",
                        ago=timedelta(minutes=10) - timedelta(seconds=3))
    top = run_record(trace_id=TRACE, span_id="a" * 16, calls=[c1, c2, c3, c4], name="planner",
                     ago=timedelta(minutes=10) + timedelta(seconds=1))
    return [c1, c2, c3, nested, c4, top]  # written in the order they end: the run record last


def dataset() -> list[dict[str, Any]]:
    """Calls chosen so each filter selects a different, known subset (by the last digits of call_id)."""
    return [
        call_record(1, ago=timedelta(days=3), latency_ms=250.0, cost_usd=0.00002, user_id="u-7"),
        call_record(2, ago=timedelta(hours=20), model="gpt-4o", latency_ms=3200.0, cost_usd=0.0125,
                    feature_flags={"new_prompt": True}, user_id="u-42"),
        call_record(3, ago=timedelta(hours=5), **failed("RateLimitError", 429, "Rate limit reached"),
                    latency_ms=150.0, user_id="u-42"),
        call_record(4, ago=timedelta(hours=4), provider="anthropic", model="claude-3-5-haiku", latency_ms=4100.0,
                    cost_usd=0.004, feature_flags={"new_prompt": True}, user_id="u-42"),
        call_record(5, ago=timedelta(hours=3), operation="embeddings", model="text-embedding-3-small",
                    latency_ms=90.0, output_tokens=0, total_tokens=100, cost_usd=0.000002, output=None),
        call_record(6, ago=timedelta(hours=2), **failed("InternalServerError", 500), latency_ms=5200.0,
                    model="gpt-4o", user_id="u-42", feature_flags={"new_prompt": True}),
        call_record(7, ago=timedelta(hours=1), model="my-finetune", cost_usd=None, latency_ms=1000.0,
                    user_id="u-42", env="staging"),
        call_record(8, ago=timedelta(minutes=30), operation="responses", latency_ms=2900.0, cost_usd=0.12,
                    input_tokens=40000, output_tokens=1000, total_tokens=41000, stream=True, ttft_ms=300.0,
                    output="the invoice total is 42 EUR", user_id="ü-ñ\"q"),
        call_record(9, ago=timedelta(minutes=5), **failed("RateLimitError", 429), latency_ms=120.0,
                    service="billing", request_id="r-special"),
    ]


def write_jsonl(path: Path, records: list[dict[str, Any]], *, extra: bytes = b"") -> None:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records) + extra)


@pytest.fixture()
def trace_file(tmp_path: Path) -> Path:
    """The dataset spread over a rotated family (.2 oldest, .1, live) with malformed lines mixed in."""
    live = tmp_path / "traces.jsonl"
    records = dataset() + agent_run()
    write_jsonl(live.with_name("traces.jsonl.2"), records[:3], extra=b"this is not json\n")
    write_jsonl(live.with_name("traces.jsonl.1"), records[3:7], extra=b"[1, 2, 3]\n\n")
    # the live file ends in a record cut off mid-write (no newline)
    write_jsonl(live, records[7:], extra=orjson.dumps(call_record(99, ago=timedelta(0)))[:57])
    return live


def traces(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def ids_of(out: str) -> list[int]:
    """The record numbers (call_id as int; runs by their span) of JSON-lines output, in output order."""
    ids = []
    for line in out.splitlines():
        record = orjson.loads(line)
        ids.append(int(record["call_id"], 16) if record["kind"] == "call" else -int(record["span_id"][0], 16))
    return ids


class TestReadingFiles:
    def test_rotated_files_are_read_oldest_first(self, trace_file: Path) -> None:
        """Backups .2 then .1 then the live file: records come out in the order they were written."""
        assert [p.name for p in trace_files(trace_file)] == ["traces.jsonl.2", "traces.jsonl.1", "traces.jsonl"]
        scanned = [m.record["call_id"] for m in LocalScan(trace_file, Query(kind="all")) if m.record["kind"] == "call"]
        expected = [r["call_id"] for r in dataset() + agent_run() if r["kind"] == "call"]
        assert scanned == expected

    def test_malformed_and_truncated_lines_are_skipped_and_counted(self, trace_file: Path, capsys) -> None:
        """Garbage, a non-object line and a record cut off mid-write are counted; blank lines are not errors."""
        scan = LocalScan(trace_file, Query(kind="all"))
        assert len(list(scan)) == len(dataset()) + len(agent_run())
        assert scan.malformed == 3
        assert any("traces.jsonl.2:4: not valid JSON" in e for e in scan.malformed_examples)
        assert any("traces.jsonl.1:5: not a JSON object" in e for e in scan.malformed_examples)
        code, _, err = traces(capsys, "--file", str(trace_file), "--format", "json")
        assert code == 0
        assert "skipped 3 malformed line(s)" in err

    def test_a_missing_file_is_a_clear_error(self, tmp_path: Path, capsys) -> None:
        """No trace file: exit 1 naming the path and how to point at the right one."""
        code, out, err = traces(capsys, "--file", str(tmp_path / "nope.jsonl"))
        assert code == 1 and out == ""
        assert "nope.jsonl" in err and "LLMMETRICS_TRACE_FILE" in err
        with pytest.raises(NoTraceFiles):
            list(LocalScan(tmp_path / "nope.jsonl", Query()))

    def test_an_unreadable_file_is_a_clear_error(self, trace_file: Path, capsys, monkeypatch) -> None:
        """A file the user may not read: exit 1 with the system's reason, no traceback."""
        def refuse(file: Path) -> None:
            raise PermissionError(13, "Permission denied", str(file))

        monkeypatch.setattr(local, "_map", refuse)
        code, out, err = traces(capsys, "--file", str(trace_file))
        assert code == 1 and out == ""
        assert "cannot read the trace files" in err and "Permission denied" in err

    def test_an_empty_file_answers_with_no_records(self, tmp_path: Path, capsys) -> None:
        """An empty trace file (just rotated) is not an error: the table has its header and nothing else."""
        (tmp_path / "t.jsonl").write_bytes(b"")
        code, out, err = traces(capsys, "--file", str(tmp_path / "t.jsonl"))
        assert code == 0 and out.splitlines()[0].startswith("TIME (UTC)") and len(out.splitlines()) == 1
        assert "scanned 0 bytes in 1 file(s)" in err

    def test_per_process_files_are_all_read(self, tmp_path: Path, capsys) -> None:
        """A ``{pid}`` path (one file per worker process) reads every process's files and backups."""
        write_jsonl(tmp_path / "t-11.jsonl", [call_record(1, ago=timedelta(hours=1))])
        write_jsonl(tmp_path / "t-11.jsonl.1", [call_record(2, ago=timedelta(hours=2))])
        write_jsonl(tmp_path / "t-12.jsonl", [call_record(3, ago=timedelta(hours=3))])
        code, out, _ = traces(capsys, "--file", str(tmp_path / "t-{pid}.jsonl"), "--format", "json")
        assert code == 0 and ids_of(out) == [1, 2, 3]

    def test_the_env_variable_names_the_default_file(self, trace_file: Path, capsys, monkeypatch) -> None:
        """Without --file the configured LLMMETRICS_TRACE_FILE is read."""
        monkeypatch.setenv("LLMMETRICS_TRACE_FILE", str(trace_file))
        monkeypatch.delenv("LLMMETRICS_LOKI_URL", raising=False)
        code, out, _ = traces(capsys, "--call-id", f"{5:032x}", "--format", "json")
        assert code == 0 and ids_of(out) == [5]

    def test_a_bad_setting_the_command_does_not_read_does_not_stop_it(self, trace_file: Path, capsys,
                                                                     monkeypatch) -> None:
        """LLMMETRICS_SAMPLE_SUCCESS_RATIO=abc is the instrumentation's business: the query still answers."""
        monkeypatch.setenv("LLMMETRICS_SAMPLE_SUCCESS_RATIO", "abc")
        code, out, _ = traces(capsys, "--file", str(trace_file), "--call-id", f"{5:032x}", "--format", "json")
        assert code == 0 and ids_of(out) == [5]

    def test_a_bad_setting_the_command_reads_is_named(self, trace_file: Path, capsys, monkeypatch) -> None:
        """LLMMETRICS_LOKI_URL without a scheme: exit 2 with the variable, the value and what is accepted."""
        monkeypatch.setenv("LLMMETRICS_LOKI_URL", "localhost:3100")
        code, out, err = traces(capsys, "--status", "error")
        assert code == 2 and out == ""
        assert err == ("llmmetrics traces: invalid configuration: LLMMETRICS_LOKI_URL='localhost:3100' (field "
                       "loki_url): expected an http:// or https:// URL such as http://localhost:3100 (or empty for "
                       "none)\n")


FILTERS: list[tuple[list[str], set[int]]] = [
    ([], {1, 2, 3, 4, 5, 6, 7, 8, 9, 101, 102, 103, 104}),
    (["--status", "error"], {3, 6, 9, 103}),
    (["--status", "ok"], {1, 2, 4, 5, 7, 8, 101, 102, 104}),
    (["--model", "gpt-4o"], {2, 6, 102}),
    (["--provider", "anthropic"], {4}),
    (["--operation", "embeddings"], {5}),
    (["--operation", "responses"], {8}),
    (["--error-type", "RateLimitError"], {3, 9}),
    (["--user", "u-42"], {2, 3, 4, 6, 7, 101, 102, 103, 104}),
    (["--user", 'ü-ñ"q'], {8}),
    (["--request-id", "r-special"], {9}),
    (["--trace-id", TRACE], {101, 102, 103, 104}),
    (["--call-id", f"{4:032x}"], {4}),
    (["--service", "billing"], {9}),
    (["--env", "staging"], {7}),
    (["--min-latency", "3s"], {2, 4, 6, 103}),
    (["--min-latency", "3000"], {2, 4, 6, 103}),
    (["--max-latency", "150ms"], {3, 5, 9}),
    (["--min-latency", "1s", "--max-latency", "3.2s"], {2, 7, 8, 101}),
    (["--min-cost", "0.01"], {2, 8}),
    (["--max-cost", "$0.00003"], {1, 5, 101, 104}),
    (["--since", "6h"], {3, 4, 5, 6, 7, 8, 9, 101, 102, 103, 104}),
    (["--since", "1d", "--until", "270m"], {2, 3}),
    (["--from", (NOW - timedelta(minutes=45)).isoformat(), "--until", (NOW - timedelta(minutes=7)).isoformat()],
     {8, 101, 102, 103, 104}),
    (["--grep", "invoice total"], {8}),
    (["--status", "error", "--model", "gpt-4o", "--since", "6h"], {6}),
    (["--user", "u-42", "--min-latency", "3s", "--status", "success"], {2, 4}),
]


class TestFilters:
    @pytest.mark.parametrize(("args", "expected"), FILTERS, ids=[" ".join(a) or "none" for a, _ in FILTERS])
    def test_each_filter_selects_exactly_its_records(self, trace_file: Path, capsys, args, expected) -> None:
        """Every filter (and combinations) returns exactly the calls the dataset was built to match."""
        code, out, _ = traces(capsys, "--file", str(trace_file), "--format", "json", "--limit", "100", *args)
        assert code == 0
        assert set(ids_of(out)) == expected

    def test_kind_selects_run_or_all_records(self, trace_file: Path, capsys) -> None:
        """--kind run lists the run records, --kind all lists calls and runs; the default is calls only."""
        _, out, _ = traces(capsys, "--file", str(trace_file), "--format", "json", "--kind", "run")
        assert sorted(ids_of(out)) == [-0xB, -0xA]
        _, out, _ = traces(capsys, "--file", str(trace_file), "--format", "json", "--kind", "all", "--limit", "100")
        assert len(ids_of(out)) == 15
        _, out, _ = traces(capsys, "--file", str(trace_file), "--format", "json", "--kind", "run", "--status", "error")
        assert sorted(ids_of(out)) == [-0xB, -0xA]

    @pytest.mark.parametrize("block", [5, 300, 1 << 21])
    def test_byte_prefilter_never_drops_a_match(self, trace_file: Path, monkeypatch, block: int) -> None:
        """For many random filter combinations and block sizes (lines longer than a block included), the
        scan equals a plain parse-everything-and-test reference."""
        monkeypatch.setattr(local, "_BLOCK", block)
        every = dataset() + agent_run()
        values = {
            "status": ["success", "error"], "model": ["gpt-4o", "gpt-4o-mini", "my-finetune"],
            "user_id": ["u-42", "u-1", 'ü-ñ"q'], "provider": ["openai", "anthropic"],
            "error_type": ["RateLimitError", "APITimeoutError"], "kind": ["call", "run", "all"],
            "text": ["answer", "u-4", '"status":"error"', "question 10"],
        }
        rng = random.Random(5)
        for _ in range(200):
            chosen = {k: rng.choice(v) for k, v in values.items() if rng.random() < 0.35}
            query = Query(**chosen)
            text = chosen.get("text")
            expected = [r for r in every if query.matches(r) and (text is None or text.encode() in orjson.dumps(r))]
            got = [m.record for m in LocalScan(trace_file, query)]
            assert got == expected, chosen

    @pytest.mark.parametrize("block", [700, 1 << 21])
    def test_lines_from_other_json_writers_are_found_too(self, tmp_path: Path, monkeypatch, block: int) -> None:
        """Spaced separators, ASCII escapes and another key order defeat no prefilter or pruning: the same
        answers as parsing everything, for filters and for top-N selections."""
        monkeypatch.setattr(local, "_BLOCK", block)
        every = dataset() + agent_run()
        path = tmp_path / "other.jsonl"
        path.write_text("".join(json.dumps(dict(sorted(r.items()))) + "\n" for r in every))
        rng = random.Random(9)
        for _ in range(150):
            query = Query(
                kind=rng.choice(["call", "run", "all"]), status=rng.choice([None, "error", "success"]),
                model=rng.choice([None, "gpt-4o", "gpt-4o-mini"]), user_id=rng.choice([None, "u-42", 'ü-ñ"q']),
                error_type=rng.choice([None, "RateLimitError"]), min_latency_ms=rng.choice([None, 1000.0]),
                max_cost_usd=rng.choice([None, 0.01]), start_ns=rng.choice([None, every[5]["ts_ns"]]),
            )
            expected = [r["ts_ns"] for r in every if query.matches(r)]
            assert [m.record["ts_ns"] for m in LocalScan(path, query)] == expected, query
            order = SortOrder.parse(rng.choice(["-cost", "latency", "-time", "-tokens", "model"]))
            expected_top = [order.value(r) for r in order.first([r for r in every if query.matches(r)], 2,
                                                                record=lambda r: r)]
            assert [order.value(m.record) for m in LocalScan(path, query).top(order, 2)] == expected_top, order

    @pytest.mark.parametrize(("args", "message"), [
        (["--min-latency", "fast"], "--min-latency"),
        (["--max-cost", "cheap"], "--max-cost"),
        (["--since", "yesterday"], "--since"),
        (["--since", "1h", "--from", "2026-01-01"], "either --since or --from"),
        (["--min-latency", "5s", "--max-latency", "1s"], "latency"),
        (["--limit", "0"], "--limit"),
        (["--sort", "-"], "--sort"),
    ])
    def test_bad_values_exit_2_with_the_option_named(self, trace_file: Path, capsys, args, message) -> None:
        """A value that cannot be understood is a usage error naming the option, not a traceback."""
        code, out, err = traces(capsys, "--file", str(trace_file), *args)
        assert code == 2 and out == ""
        assert message in err


class TestSorting:
    def test_default_is_newest_first_and_limit_applies(self, trace_file: Path, capsys) -> None:
        """Without --sort the newest calls come first; --limit keeps that many."""
        _, out, _ = traces(capsys, "--file", str(trace_file), "--format", "json", "--limit", "3")
        assert ids_of(out) == [9, 104, 103]

    def test_sort_by_latency_descending(self, trace_file: Path, capsys) -> None:
        """The article's query: errors of a model in the last 6 hours, slowest first."""
        _, out, _ = traces(capsys, "--file", str(trace_file), "--format", "json", "--status", "error",
                           "--since", "6h", "--sort", "-latency")
        assert ids_of(out) == [103, 6, 3, 9]

    def test_sort_by_cost_ascending_puts_unpriced_last(self, trace_file: Path, capsys) -> None:
        """Records without the sort field (unpriced, failed) come after all others in either direction."""
        _, out, _ = traces(capsys, "--file", str(trace_file), "--format", "json", "--sort", "cost", "--limit", "100")
        ids = ids_of(out)
        assert ids[:8] == [5, 1, 101, 104, 102, 4, 2, 8] and set(ids[8:]) == {3, 6, 7, 9, 103}
        _, out, _ = traces(capsys, "--file", str(trace_file), "--format", "json", "--sort", "-cost", "--limit", "100")
        ids = ids_of(out)
        assert ids[:4] == [8, 2, 4, 102] and set(ids[8:]) == {3, 6, 7, 9, 103}

    def test_sort_by_tokens_and_by_a_dotted_field(self, trace_file: Path, capsys) -> None:
        """Aliases resolve (tokens → total_tokens) and any dotted path sorts (time ascending = oldest first)."""
        _, out, _ = traces(capsys, "--file", str(trace_file), "--format", "json", "--sort", "-tokens", "--limit", "1")
        assert ids_of(out) == [8]
        _, out, _ = traces(capsys, "--file", str(trace_file), "--format", "json", "--sort", "time", "--limit", "2")
        assert ids_of(out) == [1, 2]
        _, out, _ = traces(capsys, "--file", str(trace_file), "--format", "json", "--sort", "-error.status_code",
                           "--limit", "1")
        assert ids_of(out) == [6]


    @pytest.mark.parametrize("block", [7, 64, 1 << 20])
    def test_pruned_selection_equals_a_full_sort(self, trace_file: Path, monkeypatch, block: int) -> None:
        """top() skips lines that cannot make the cut and reads newest-first backwards (in blocks of any
        size), yet returns exactly what sorting every match would, for random filters, orders and limits."""
        monkeypatch.setattr(local, "_BLOCK", block)
        every = dataset() + agent_run()
        rng = random.Random(block)
        fields = ["-latency", "latency", "-cost", "cost", "-time", "time", "-tokens", "ttft",
                  "-error.status_code", "-input_tokens", "model"]
        for _ in range(60):
            order = SortOrder.parse(rng.choice(fields))
            query = Query(kind=rng.choice(["call", "all"]), status=rng.choice([None, "error", "success"]),
                          min_latency_ms=rng.choice([None, 500.0]))
            limit = rng.choice([1, 2, 3, 5, 100])
            matching = [r for r in every if query.matches(r)]
            expected = [order.value(r) for r in order.first(matching, limit, record=lambda r: r)]
            scan = LocalScan(trace_file, query)
            got = [order.value(m.record) for m in scan.top(order, limit)]
            assert got == expected, (order, query, limit)

    def test_malformed_lines_are_located_when_read_backwards(self, trace_file: Path) -> None:
        """The newest-first scan still reports file:line of bad lines (line numbers from the start)."""
        scan = LocalScan(trace_file, Query(kind="all"))
        scan.top(SortOrder(), 100)
        assert sorted(e.rsplit("/", 1)[-1] for e in scan.malformed_examples) == [
            "traces.jsonl.1:5: not a JSON object", "traces.jsonl.2:4: not valid JSON", "traces.jsonl:9: not valid JSON"]


class TestAggregation:
    def test_cost_per_feature_flag_for_one_user(self, trace_file: Path, capsys) -> None:
        """--user u-42 --sum cost_usd --by feature_flags.new_prompt: one row per flag value, unpriced counted apart."""
        code, out, _ = traces(capsys, "--file", str(trace_file), "--user", "u-42", "--since", "1d",
                              "--sum", "cost_usd", "--by", "feature_flags.new_prompt", "--format", "json")
        assert code == 0
        rows = {r["key"]: r for r in map(orjson.loads, out.splitlines())}
        # new_prompt=true: 2 (0.0125), 4 (0.004), 6 (failed: no cost), 101/104 (0.000027 each), 102 (0.0031), 103 (failed)
        assert rows["true"]["records"] == 7 and rows["true"]["missing"] == 2
        assert rows["true"]["sum"] == pytest.approx(0.0125 + 0.004 + 0.0031 + 2 * 0.000027)
        # new_prompt=false: 3 (failed), 7 (unpriced model)
        assert rows["true"]["unpriced"] == 0  # both lack a cost because they failed
        # nothing priced: the sum is unknown (null), never 0; one success (the unpriced model) says why
        assert rows["false"] == {"by": "feature_flags.new_prompt", "key": "false", "records": 2, "field": "cost_usd",
                                 "sum": None, "missing": 2, "unpriced": 1}

    def test_the_table_has_a_row_per_group_and_a_total(self, trace_file: Path, capsys) -> None:
        """The table form shows dollars formatted, per group and in total."""
        code, out, _ = traces(capsys, "--file", str(trace_file), "--sum", "cost", "--by", "model")
        assert code == 0
        lines = out.splitlines()
        assert lines[0].split()[:2] == ["model", "RECORDS"]
        by_model = {line.split()[0]: line for line in lines[1:]}
        assert "$0.120074" in by_model["gpt-4o-mini"]  # 0.12 + the small calls
        assert lines[1].startswith("gpt-4o-mini")
        assert lines[-1].startswith("TOTAL") and " 13 " in lines[-1]

    def test_a_group_with_no_priced_call_shows_unpriced_never_zero(self, tmp_path: Path, capsys) -> None:
        """--sum cost: a model none of whose 36 calls is priced reads `n/a (36 unpriced)`, a partly priced one
        its sum and how many were unpriced, and no amount reads $0."""
        records = ([call_record(n, ago=timedelta(minutes=n), model="my-finetune", cost_usd=None) for n in range(36)]
                   + [call_record(100 + n, ago=timedelta(minutes=n), cost_usd=0.25) for n in range(2)]
                   + [call_record(200, ago=timedelta(minutes=1), cost_usd=None)])
        write_jsonl(tmp_path / "t.jsonl", records)
        code, out, _ = traces(capsys, "--file", str(tmp_path / "t.jsonl"), "--sum", "cost", "--by", "model")
        assert code == 0
        rows = {line.split()[0]: line for line in out.splitlines()[1:]}
        assert re.search(r"^my-finetune\s+36\s+n/a \(36 unpriced\)\s+n/a$", rows["my-finetune"])
        assert re.search(r"^gpt-4o-mini\s+3\s+\$0\.500000 \(1 unpriced\)\s+\$0\.250000$", rows["gpt-4o-mini"])
        assert re.search(r"^TOTAL\s+39\s+\$0\.500000 \(37 unpriced\)", rows["TOTAL"])
        assert "$0 " not in out and "$0.000000" not in out
        _, out, _ = traces(capsys, "--file", str(tmp_path / "t.jsonl"), "--sum", "cost", "--by", "model",
                           "--format", "json")
        by_key = {r["key"]: r for r in map(orjson.loads, out.splitlines())}
        assert by_key["my-finetune"]["sum"] is None and by_key["my-finetune"]["unpriced"] == 36

    def test_money_has_one_precision_everywhere(self, trace_file: Path, capsys) -> None:
        """Every dollar amount in the table, the tree and the totals has six decimals, whatever its size."""
        outputs = [traces(capsys, "--file", str(trace_file), "--limit", "100")[1],
                   traces(capsys, "--file", str(trace_file), "--trace-id", TRACE)[1],
                   traces(capsys, "--file", str(trace_file), "--sum", "cost", "--by", "model")[1]]
        amounts = [a for out in outputs for a in re.findall(r"\$[\d,.]+", out)]
        assert len(amounts) > 20 and all(re.fullmatch(r"\$\d{1,3}(,\d{3})*\.\d{6}", a) for a in amounts), amounts

    def test_limit_bounds_how_many_records_are_aggregated(self, trace_file: Path, capsys) -> None:
        """With --limit, totals cover only that many matching records (the oldest first, as stored)."""
        code, out, _ = traces(capsys, "--file", str(trace_file), "--sum", "latency", "--format", "json",
                              "--limit", "3")
        assert code == 0
        (row,) = map(orjson.loads, out.splitlines())
        assert row["records"] == 3 and row["sum"] == 250.0 + 3200.0 + 150.0

    def test_by_without_sum_counts_and_missing_groups_show_none(self) -> None:
        """--by alone counts records per value; records without the field group under (none)."""
        groups = aggregate([{"context": {"tenant": "a"}}, {"context": {}}, {"context": {"tenant": "a"}}],
                           None, "context.tenant")
        assert [(g.key, g.records) for g in groups] == [("a", 2), ("(none)", 1)]

    def test_sum_of_latency_and_tokens(self, trace_file: Path, capsys) -> None:
        """Other summable fields: milliseconds formatted as time, tokens with separators."""
        _, out, _ = traces(capsys, "--file", str(trace_file), "--sum", "tokens", "--by", "operation")
        assert "41,000" in out
        _, out, _ = traces(capsys, "--file", str(trace_file), "--sum", "latency", "--by", "provider")
        assert re.search(r"anthropic\s+1\s+4\.10 s", out)


class TestSortField:
    def test_a_field_no_record_has_is_said_with_the_sort_keys(self, trace_file: Path, capsys) -> None:
        """--sort -speed: the records are shown as read, and stderr says no record has `speed`, naming the keys."""
        code, out, err = traces(capsys, "--file", str(trace_file), "--sort", "-speed")
        assert code == 0 and out.startswith("TIME (UTC)")
        assert err.splitlines()[0] == (
            "llmmetrics traces: no record has the field 'speed' to sort by, so the records are in the order they "
            "were read; sort keys: latency, cost, tokens, time, ttft, or any record field (e.g. input_tokens, "
            "error.status_code); a leading '-' sorts descending")

    def test_a_field_some_records_have_sorts_without_a_word(self, trace_file: Path, capsys) -> None:
        """--sort on a field present in some records sorts them first and warns of nothing."""
        code, _, err = traces(capsys, "--file", str(trace_file), "--sort", "-ttft", "--format", "json")
        assert code == 0 and "no record has" not in err


class TestTreeView:
    def test_a_run_renders_as_an_indented_tree(self, trace_file: Path, capsys) -> None:
        """--trace-id alone: run at top, calls by start time, the nested run indented, the failing step marked."""
        code, out, _ = traces(capsys, "--file", str(trace_file), "--trace-id", TRACE)
        assert code == 0
        lines = out.splitlines()
        assert lines[0] == f"trace {TRACE}"
        assert lines[1].startswith("└─ ✗ run planner  5.00 s  model wait 32.50 s  4 steps")
        assert lines[2].startswith("   ├─ ✓ chat gpt-4o-mini  1.20 s") and f"call {101:032x}" in lines[2]
        assert lines[3].startswith("   ├─ ✓ chat gpt-4o  900 ms  tokens 100 → 20  $0.003100")
        assert lines[4].startswith("   ├─ ✗ run search")
        assert lines[5].startswith("   │  └─ ✗ chat gpt-4o-mini  30.00 s  tokens -")
        assert "APITimeoutError" in lines[5] and lines[5].endswith("← failed step")
        assert lines[6].startswith("   └─ ✓ chat gpt-4o-mini  400 ms")
        assert lines[7] == ("totals: 4 calls, 1 failed · model time 32.50 s · tokens 300 in / 60 out · "
                            "cost $0.003154")

    def test_calls_without_their_run_record_still_form_the_tree(self, tmp_path: Path, capsys) -> None:
        """A run still in progress (no run record yet) shows its calls and says the run record is missing."""
        calls = [r for r in agent_run() if r["kind"] == "call"]
        write_jsonl(tmp_path / "t.jsonl", calls)
        code, out, _ = traces(capsys, "--file", str(tmp_path / "t.jsonl"), "--trace-id", TRACE)
        assert code == 0
        assert "no run record" in out
        assert sum(1 for line in out.splitlines() if "chat gpt-4o" in line) == 4
        assert out.splitlines()[-1].startswith("totals: 4 calls, 1 failed")

    def test_an_unknown_trace_id_says_so(self, trace_file: Path, capsys) -> None:
        """A trace id with no records answers plainly rather than printing an empty tree."""
        code, out, _ = traces(capsys, "--file", str(trace_file), "--trace-id", "f" * 32)
        assert code == 0 and out == f"no records with trace id {'f' * 32}\n"


class TestTable:
    def test_columns_are_aligned_and_units_formatted(self, trace_file: Path, capsys) -> None:
        """Every row starts each column at the same offset; ms, s, $, tokens and errors are human-formatted."""
        code, out, _ = traces(capsys, "--file", str(trace_file), "--limit", "100")
        assert code == 0
        lines = out.splitlines()
        header = lines[0]
        starts = [header.index(h) for h in ("MODEL / RUN", "OP", "USER", "TRACE ID")]
        for line in lines[1:]:
            for start in starts:
                assert line[start - 2:start] == "  " and line[start] != " ", (line, start)
        row8 = next(line for line in lines if "the invoice" in line or "responses" in line)
        assert "2.90 s" in row8 and "40,000 → 1,000" in row8 and "$0.120000" in row8
        row3 = next(line for line in lines if "RateLimitError 429: Rate limit reached" in line)
        assert "✗" in row3 and "150 ms" in row3

    def test_unknown_values_show_as_dash_not_zero(self) -> None:
        """An unpriced call shows '-' for cost; a failed call without usage shows '-' tokens."""
        buffer = io.StringIO()
        render_table([call_record(7, ago=timedelta(0), cost_usd=None),
                      call_record(3, ago=timedelta(0), **failed("RateLimitError", 429))], buffer)
        rows = buffer.getvalue().splitlines()[1:]
        assert re.search(r"800 ms\s+100 → 20\s+-\s", rows[0])
        assert re.search(r"800 ms\s+-\s+-\s", rows[1])
