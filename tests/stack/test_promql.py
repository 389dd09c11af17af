"""The helpers that find the documented PromQL and split conditions, so the real-server checks are not vacuous."""

from __future__ import annotations

from tests.stack.promql import documented_queries, operands


def test_operands_split_conditions_at_top_level_only() -> None:
    """Comparisons, `and`/`or`/`unless` and their modifiers split; label matchers, strings and numbers do not."""
    assert operands('sum(rate(a{x="p>q"}[5m])) == 0 and on (job) sum(rate(b[5m])) > bool 0.8 * 1e9') == [
        'sum(rate(a{x="p>q"}[5m]))', "sum(rate(b[5m]))"]
    assert operands("x or vector(0)") == ["x", "vector(0)"]
    assert operands("max(c) > (10 / 300)") == ["max(c)"]
    assert operands("histogram_quantile(0.95, sum by (le) (rate(d[5m])))") == [
        "histogram_quantile(0.95, sum by (le) (rate(d[5m])))"]


def test_documented_queries_are_found_in_readme_and_docs() -> None:
    """Every ```promql block of README.md and docs/ is collected, each with the file it came from."""
    found = documented_queries()
    assert found and all(where == "README.md" or where.startswith("docs/") for where, _ in found)
    assert all(query and "```" not in query for _, query in found)
