"""The LogQL in README.md and docs/*.md parses with Grafana's LogQL grammar (so users can paste it as is)."""

from __future__ import annotations

from tests.support.doc_queries import documented_logql
from tests.support.logql_grammar import logql_parse_errors


def test_every_logql_example_in_the_docs_parses() -> None:
    """Each ```logql block of every page is valid LogQL per @grafana/lezer-logql."""
    queries = documented_logql()
    assert len(queries) >= 7
    errors = logql_parse_errors([query for _, query in queries])
    assert all(e == [] for e in errors), [(page, q, e) for (page, q), e in zip(queries, errors) if e]
