"""Every LogQL query in the dashboards parses with Grafana's LogQL grammar and asks only for what the Loki
sink writes: its stream labels, its structured metadata, and fields of the trace record."""

from __future__ import annotations

import re

import pytest

from tests.support.logql_grammar import logql_parse_errors
from tests.stack.stack_files import load_dashboards, substitute, targets

STREAM_LABELS = {"service_name", "env", "provider", "level"}
STRUCTURED_METADATA = {"trace_id", "span_id", "call_id", "user_id", "request_id"}
#: Top-level fields of call and run records (the shared spec).
RECORD_FIELDS = {
    "kind", "call_id", "trace_id", "span_id", "parent_span_id", "parent_trace_id", "run_name", "timestamp", "ts_ns",
    "service", "env", "provider", "operation", "model", "response_model", "stream", "status", "latency_ms", "ttft_ms",
    "input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens", "total_tokens", "cost_usd", "error",
    "messages", "kwargs", "output", "finish_reason", "tool_calls", "provider_request_id", "user_id", "request_id",
    "feature_flags", "context", "sampled", "truncated", "original_sizes",
    "model_wait_ms", "steps", "step_count", "unpriced_steps", "failed_call_id",
}

QUERIES = [(f"{name}:{panel['title']}:{target['refId']}", target["expr"])
           for name, dashboard in load_dashboards().items() for panel, target in targets(dashboard, "loki")]


def test_dashboards_have_logql_queries() -> None:
    """The traces dashboard's panels are LogQL queries (so the checks below cover something)."""
    assert len(QUERIES) >= 8


def test_logql_parses_with_grafana_grammar() -> None:
    """@grafana/lezer-logql finds no syntax error in any dashboard query (variables substituted)."""
    errors = logql_parse_errors([substitute(q) for _, q in QUERIES])
    assert {qid: e for (qid, _), e in zip(QUERIES, errors) if e} == {}


def test_grammar_check_reports_broken_queries() -> None:
    """The grammar check is not vacuous: an unbalanced query and a bad pipeline stage are reported."""
    errors = logql_parse_errors(['sum(count_over_time({service_name="a"}[5m])', '{service_name="a"} | json | ='])
    assert all(errors)


def _extracted(query: str) -> dict[str, str]:
    """alias -> record path of every ``| json alias="path"`` extraction."""
    found: dict[str, str] = {}
    for stage in re.findall(r"\| json ((?:\w+=\"[^\"]+\"(?:, )?)+)", query):
        found.update(re.findall(r'(\w+)="([^"]+)"', stage))
    return found


@pytest.mark.parametrize(("qid", "query"), QUERIES, ids=[qid for qid, _ in QUERIES])
def test_logql_uses_only_sink_labels_and_record_fields(qid: str, query: str) -> None:
    """Stream selectors use sink labels; json paths start at record fields; filters, unwraps and groupings
    use stream labels, structured metadata or fields extracted earlier in the same query."""
    selectors = re.findall(r"\{([^}]*)\}", query)
    assert selectors, "no stream selector"
    for selector in selectors:
        assert {m for m in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", selector)} <= STREAM_LABELS, selector
    extracted = _extracted(query)
    assert not re.search(r"\| json\s*(\||$|\[)", query), "use | json with named fields"
    for path in extracted.values():
        root = re.split(r"[.\[]", path)[0]
        assert root in RECORD_FIELDS, f"json path {path!r} is not a record field"
    known = STREAM_LABELS | STRUCTURED_METADATA | set(extracted) | {"__error__"}
    pipeline = re.sub(r"\| json [^|\[]+", "", query)
    filtered = set(re.findall(r"(?:\||\bor\b|\band\b)\s*(\w+)\s*(?:=~|!~|!=|==|>=|<=|=|>|<)\s*[\"\d]", pipeline))
    unwrapped = set(re.findall(r"\| unwrap (\w+)", query))
    grouped = {label.strip() for group in re.findall(r"\bby \(([^)]*)\)", query) for label in group.split(",")}
    assert (filtered | unwrapped | grouped) - known == set()
    assert unwrapped <= set(extracted), "unwrap only fields extracted from the record"
