"""LogQL built for every `llmmetrics traces` filter: exact text, stage order, escaping, and Grafana's grammar."""

from __future__ import annotations

import pytest
from tests.support.logql_grammar import (
    logql_parse_errors,  # tests/ is on sys.path under pytest (rootdir-less test dir)
)

from llmmetrics.cli import main as llmmetrics_main
from llmmetrics.traces.filters import Query
from llmmetrics.traces.logql import build_logql, logql_string


def main(args: list[str]) -> int:
    """`llmmetrics traces ARGS` through the real command-line entry point."""
    return llmmetrics_main(["traces", *args])

SEL = '{service_name="checkout"}'
JSON_END = '| __error__=""'

CASES: list[tuple[Query, str]] = [
    (Query(kind="all"), SEL),
    (Query(), f'{SEL} | json | kind="call" {JSON_END}'),
    (Query(kind="run"), f'{SEL} | json | kind="run" {JSON_END}'),
    (Query(kind="all", status="error"), '{service_name="checkout", level="error"}'),
    (Query(kind="all", status="success"), '{service_name="checkout", level="info"}'),
    (Query(kind="all", provider="openai"), '{service_name="checkout", provider="openai"}'),
    (Query(kind="all", env="prod"), '{service_name="checkout", env="prod"}'),
    (Query(kind="all", service="billing"), '{service_name="billing"}'),
    (Query(kind="all", model="gpt-4o-mini"), f'{SEL} | json | model="gpt-4o-mini" {JSON_END}'),
    (Query(kind="all", operation="embeddings"), f'{SEL} | json | operation="embeddings" {JSON_END}'),
    (Query(kind="all", error_type="RateLimitError"), f'{SEL} | json | error_type="RateLimitError" {JSON_END}'),
    (Query(kind="all", trace_id="4bf92f3577b34da6a3ce929d0e0e4736"), f'{SEL} | trace_id="4bf92f3577b34da6a3ce929d0e0e4736"'),
    (Query(kind="all", call_id="ab" * 16), f'{SEL} | call_id="{"ab" * 16}"'),
    (Query(kind="all", user_id="u-42"), f'{SEL} | user_id="u-42"'),
    (Query(kind="all", request_id="r-1"), f'{SEL} | request_id="r-1"'),
    (Query(kind="all", min_latency_ms=3000), f"{SEL} | json | latency_ms >= 3000 {JSON_END}"),
    (Query(kind="all", max_latency_ms=250.5), f"{SEL} | json | latency_ms <= 250.5 {JSON_END}"),
    (Query(kind="all", min_cost_usd=0.00001), f"{SEL} | json | cost_usd >= 0.00001 {JSON_END}"),
    (Query(kind="all", max_cost_usd=0.1), f"{SEL} | json | cost_usd <= 0.1 {JSON_END}"),
    (Query(kind="all", text="invoice total"), f'{SEL} |= "invoice total"'),
    (Query(kind="all", start_ns=1, end_ns=2), SEL),  # time bounds travel as start/end, not LogQL
    (
        Query(status="error", model="gpt-4o-mini", user_id="u-42", text="timeout", min_latency_ms=3000,
              max_cost_usd=0.1, provider="openai"),
        ('{service_name="checkout", provider="openai", level="error"} |= "timeout" | user_id="u-42" | json'
         ' | kind="call" | model="gpt-4o-mini" | latency_ms >= 3000 | cost_usd <= 0.1 | __error__=""'),
    ),
]


class TestBuiltQueries:
    @pytest.mark.parametrize(("query", "expected"), CASES, ids=[e for _, e in CASES])
    def test_each_filter_becomes_the_expected_stage(self, query: Query, expected: str) -> None:
        """Labels in the selector, text as a line filter, ids as metadata filters, the rest after | json."""
        assert build_logql(query, service="checkout") == expected

    def test_every_built_query_parses_with_grafanas_grammar(self) -> None:
        """All queries above, plus hostile strings, parse with @grafana/lezer-logql without an error node."""
        nasty = ['a"b', "back\\slash", "new\nline\ttab", "`tick`", "{json}|= x", "ünï©ødé", "\x01ctl\x7f"]
        queries = [build_logql(q, service="checkout") for q, _ in CASES]
        queries += [build_logql(Query(model=s, user_id=s, text=s, status="error"), service=s, env=s) for s in nasty]
        queries += [build_logql(q, service="checkout", structured_metadata=False) for q, _ in CASES]
        errors = logql_parse_errors(queries)
        assert errors == [[] for _ in queries], [(q, e) for q, e in zip(queries, errors) if e]

    def test_the_grammar_check_does_catch_broken_queries(self) -> None:
        """Guard for the test above: an unescaped quote is reported as an error."""
        assert logql_parse_errors(['{service_name="a"b"} | json'])[0] != []

    def test_without_structured_metadata_ids_are_filtered_after_json(self) -> None:
        """When the sink sends no structured metadata, the ids are only in the line: filter them after | json."""
        logql = build_logql(Query(kind="all", trace_id="t" * 32, user_id="u-1"), service="checkout",
                            structured_metadata=False)
        assert logql == f'{SEL} | json | trace_id="{"t" * 32}" | user_id="u-1" {JSON_END}'


class TestEscaping:
    @pytest.mark.parametrize(("raw", "quoted"), [
        ("plain", '"plain"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("C:\\path", '"C:\\\\path"'),
        ("a\nb\tc\rd", '"a\\nb\\tc\\rd"'),
        ("\x00\x1f", '"\\x00\\x1f"'),
        ("ünï", '"ünï"'),
    ])
    def test_strings_are_quoted_like_go(self, raw: str, quoted: str) -> None:
        """Quotes, backslashes and control characters are escaped the way Loki's (Go) parser unquotes them."""
        assert logql_string(raw) == quoted

    def test_numbers_never_use_exponent_notation(self) -> None:
        """A tiny cost bound is written as a plain decimal (LogQL has no 1e-07 literal)."""
        assert "cost_usd >= 0.0000001 " in build_logql(Query(min_cost_usd=1e-7), service="s")


class TestPrintLogQL:
    def test_print_logql_prints_the_query_and_reads_nothing(self, capsys, monkeypatch, tmp_path) -> None:
        """--print-logql writes the LogQL for the given filters (service from the config) and exits 0."""
        monkeypatch.setenv("LLMMETRICS_SERVICE", "checkout")
        monkeypatch.setenv("LLMMETRICS_TRACE_FILE", str(tmp_path / "absent.jsonl"))
        code = main(["--status", "error", "--model", "gpt-4o-mini", "--min-latency", "3s", "--print-logql"])
        out = capsys.readouterr().out
        assert code == 0
        assert out == ('{service_name="checkout", level="error"} | json | kind="call" | model="gpt-4o-mini"'
                       ' | latency_ms >= 3000 | __error__=""\n')

    def test_trace_id_alone_asks_for_calls_and_runs(self, capsys) -> None:
        """The tree view needs the run records too: no kind filter, only the structured-metadata id filter."""
        code = main(["--trace-id", "4bf92f3577b34da6a3ce929d0e0e4736", "--service", "checkout", "--print-logql"])
        assert code == 0
        assert capsys.readouterr().out == f'{SEL} | trace_id="4bf92f3577b34da6a3ce929d0e0e4736"\n'


class TestDocumentedExamples:
    def test_the_logql_shown_in_docs_is_what_the_command_prints(self, capsys, monkeypatch) -> None:
        """Every `--print-logql` example in docs/traces.md matches the command's output and parses."""
        import shlex
        from pathlib import Path

        monkeypatch.setenv("LLMMETRICS_SERVICE", "checkout")
        lines = (Path(__file__).resolve().parents[2] / "docs" / "traces.md").read_text().splitlines()
        examples = [(line, lines[i + 1]) for i, line in enumerate(lines)
                    if line.startswith("$ llmmetrics traces") and line.endswith("--print-logql")]
        assert len(examples) >= 5
        for command, shown in examples:
            assert main(shlex.split(command)[3:]) == 0
            assert capsys.readouterr().out.strip() == shown, command
        assert logql_parse_errors([shown for _, shown in examples]) == [[] for _ in examples]
