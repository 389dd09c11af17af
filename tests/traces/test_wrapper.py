"""`llmmetrics traces` over what the real wrapper writes: the instrumented openai client against the fake LLM
server, records rotated across many small files by the file sink, and the same calls shipped to the Loki
stand-in and read back through query_range.

Each filter's answer is compared with a reference computed independently (``json`` module, plain Python
over every line of every file), plus absolute checks where the calls made fix the answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from tests.support.loki_contract_server import LokiContractServer
from prometheus_client import CollectorRegistry
from tests.traces.test_loki import Entry, FakeLoki

import llmmetrics
from llmmetrics.cli import main as llmmetrics_main
from llmmetrics.fake import FakeLLMServer, LatencyModel
from llmmetrics.traces.local import trace_files


def main(args: list[str]) -> int:
    """`llmmetrics traces ARGS` through the real command-line entry point."""
    return llmmetrics_main(["traces", *args])

SLOW = LatencyModel(time_to_first_token=(1.0, 1.0), per_token=(0.0, 0.0), slow_share=0.0)
FAULT = {"x-fake-fault": "rate_limit"}


def make_calls(client: openai.OpenAI, slow_client: openai.OpenAI) -> str:
    """A small production day: users, flags, every operation, a stream, failures, and an agent run."""
    ask = [{"role": "user", "content": "what is the invoice total?"}]
    with llmmetrics.bind_context(user_id="u-42", feature_flags={"new_prompt": True}):
        client.chat.completions.create(model="gpt-4o-mini", messages=ask)
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="gpt-4o-mini", messages=ask, extra_headers=FAULT)
    with llmmetrics.bind_context(user_id="u-7", request_id="r-9", feature_flags={"new_prompt": False}):
        client.embeddings.create(model="text-embedding-3-small", input="hello")
        stream = client.chat.completions.create(model="gpt-4o", messages=ask, stream=True,
                                                stream_options={"include_usage": True})
        for _ in stream:
            pass
        client.responses.create(model="gpt-4o-mini", input="summarise the refund policy")
        slow_client.chat.completions.create(model="gpt-4o-mini", messages=ask)
    with llmmetrics.bind_context(user_id="u-42", feature_flags={"new_prompt": True}), \
            llmmetrics.trace_run("planner") as run:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "plan"}])
        with llmmetrics.trace_run("search"), pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="gpt-4o", messages=ask, extra_headers={"x-fake-fault": "server_error"})
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "answer"}])
    for i in range(12):  # more traffic, written batch by batch, so the small file rotates several times
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"filler {i}"}])
        assert llmmetrics.flush(10)
    return run.trace_id


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[openai.OpenAI, openai.OpenAI]]:
    with FakeLLMServer(seed=3) as fast, FakeLLMServer(seed=4, latency=SLOW) as slow, \
            openai.OpenAI(base_url=fast.base_url, api_key="sk-test-key-0123456789abcdef", max_retries=0) as c1, \
            openai.OpenAI(base_url=slow.base_url, api_key="sk-test-key-0123456789abcdef", max_retries=0) as c2:
        yield c1, c2


@pytest.fixture(scope="module")
def written(servers, tmp_path_factory) -> Iterator[tuple[Path, str]]:
    """The calls above, traced by the real wrapper into a 2 KB rotating file with many backups."""
    path = tmp_path_factory.mktemp("wrapped") / "traces.jsonl"
    trace_id = trace_calls(servers, trace_file=str(path), trace_file_max_bytes=2000, trace_file_backups=100)
    yield path, trace_id


def trace_calls(servers, **options) -> str:
    """Make the calls through the real wrapper configured with ``options``; then restore a quiet default."""
    llmmetrics.configure(service="checkout", env="test", registry=CollectorRegistry(), **options)
    client, slow_client = (llmmetrics.instrument(c) for c in servers)
    try:
        trace_id = make_calls(client, slow_client)
        assert llmmetrics.flush(10)
        return trace_id
    finally:
        llmmetrics.uninstrument(client)
        llmmetrics.uninstrument(slow_client)
        llmmetrics.shutdown(2.0)
        llmmetrics.configure(trace_file=None, registry=CollectorRegistry())


def all_records(path: Path) -> list[dict[str, Any]]:
    """Reference reader: every line of every file, oldest file first, with the json module."""
    records = []
    for file in sorted(path.parent.glob(path.name + "*"), key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0):
        records += [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
    return records


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


def test_records_shipped_to_loki_are_found_by_the_command(servers, capsys, monkeypatch) -> None:
    """Wrapper → Loki sink → Loki stand-in; its accepted entries served back by query_range answer the command."""
    with LokiContractServer() as loki:
        trace_id = trace_calls(servers, trace_file=None, loki_url=loki.url, loki_batch_wait_seconds=0.05)
        accepted = list(loki.accepted)
    assert len(accepted) == 23
    monkeypatch.delenv("LLMMETRICS_LOKI_URL", raising=False)
    with FakeLoki([Entry(e.ts_ns, e.line, dict(e.labels), dict(e.metadata)) for e in accepted]) as fake:
        code = main(["--loki-url", fake.url, "--service", "checkout", "--since", "1h", "--status", "error",
                     "--format", "json"])
        failures = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert code == 0 and sorted(r["error"]["type"] for r in failures) == ["InternalServerError", "RateLimitError"]
        code = main(["--loki-url", fake.url, "--service", "checkout", "--since", "1h", "--trace-id", trace_id])
        tree = capsys.readouterr().out
        assert code == 0 and "run planner" in tree and "totals: 3 calls, 1 failed" in tree
        # the stand-in evaluated the selector and metadata stages against the labels the sink really wrote
        assert all(r["params"]["query"].startswith('{service_name="checkout"') for r in fake.requests)
