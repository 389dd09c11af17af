"""The LogQL in docs/loki.md and README.md parses with Grafana's LogQL grammar (so users can paste it as is)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.logql_grammar import logql_parse_errors

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("doc,minimum", [("docs/loki.md", 6), ("README.md", 3)])
def test_every_logql_example_in_the_docs_parses(doc: str, minimum: int) -> None:
    """Each ```logql block is valid LogQL per @grafana/lezer-logql."""
    queries = re.findall(r"```logql\n(.*?)\n```", (ROOT / doc).read_text(), flags=re.DOTALL)
    assert len(queries) >= minimum
    errors = logql_parse_errors(queries)
    assert all(e == [] for e in errors), [(q, e) for q, e in zip(queries, errors) if e]
