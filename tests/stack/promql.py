"""The PromQL the documentation ships, and the operands of a condition, for running them on real Prometheus."""

from __future__ import annotations

import re

from tests.stack.shared import REPO

#: Binary operators that make an expression a condition or a set operation, lowest precedence first.
_SPLITTERS = (r"\bor\b", r"\band\b|\bunless\b", r"==|!=|>=|<=|>|<")
_MODIFIER = re.compile(r"^\s*(bool\s+)?((on|ignoring)\s*\([^)]*\)\s*)?((group_left|group_right)\s*(\([^)]*\))?\s*)?")


def documented_queries() -> list[tuple[str, str]]:
    """(file, query) for every ```promql block of README.md and docs/**/*.md, found afresh on each run."""
    found = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]:
        for block in re.findall(r"```promql\n(.*?)\n```", path.read_text(encoding="utf-8"), flags=re.DOTALL):
            found.append((str(path.relative_to(REPO)), block.strip()))
    return found


def _top_level_split(expr: str, operator: str) -> list[str]:
    """``expr`` split at ``operator`` where it stands outside (), {}, [] and strings."""
    parts, depth, start, i, quote = [], 0, 0, 0, ""
    pattern = re.compile(operator)
    while i < len(expr):
        char = expr[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "\"'`":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth == 0 and (match := pattern.match(expr, i)):
            parts.append(expr[start:i])
            i = start = match.end()
            continue
        i += 1
    parts.append(expr[start:])
    return parts


def operands(expr: str) -> list[str]:
    """The vector expressions a condition or set operation combines (numbers left out), recursively.

    ``sum(rate(a[5m])) > 0 and b == 0`` gives ``["sum(rate(a[5m]))", "b"]``: each of them must return data for
    the condition to mean anything.
    """
    for operator in _SPLITTERS:
        parts = _top_level_split(expr, operator)
        if len(parts) > 1:
            return [leaf for part in parts for leaf in operands(_MODIFIER.sub("", part, count=1))]
    expr = expr.strip()
    if re.fullmatch(r"[\d.e+\-*/ ()]+", expr):
        return []
    return [expr]
