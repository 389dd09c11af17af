"""The LogQL in README.md and docs/*.md parses with Grafana's LogQL grammar (so users can paste it as is)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.docs import fenced_blocks
from tests.support.logql_grammar import logql_parse_errors

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_the_docs_carry_their_logql_in_logql_blocks() -> None:
    """The Loki page keeps its examples in ```logql blocks, where this test (and a reader) can find them."""
    assert len(fenced_blocks((ROOT / "docs" / "loki.md").read_text(), "logql")) >= 6


@pytest.mark.parametrize("page", [p for p in PAGES if fenced_blocks(p.read_text(), "logql")],
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_logql_example_in_the_docs_parses(page: Path) -> None:
    """Each ```logql block is valid LogQL per @grafana/lezer-logql."""
    queries = fenced_blocks(page.read_text(), "logql")
    errors = logql_parse_errors(queries)
    assert all(e == [] for e in errors), [(q, e) for q, e in zip(queries, errors) if e]
