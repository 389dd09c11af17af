"""The LogQL in docs/loki.md parses with Grafana's LogQL grammar (so users can paste it as is)."""

from __future__ import annotations

import re
from pathlib import Path

from logql_grammar import logql_parse_errors

DOC = Path(__file__).resolve().parents[1] / "docs" / "loki.md"


def test_every_logql_example_in_the_loki_doc_parses() -> None:
    """Each ```logql block of docs/loki.md is valid LogQL per @grafana/lezer-logql."""
    queries = re.findall(r"```logql\n(.*?)\n```", DOC.read_text(), flags=re.DOTALL)
    assert len(queries) >= 6
    errors = logql_parse_errors(queries)
    assert all(e == [] for e in errors), [(q, e) for q, e in zip(queries, errors) if e]
