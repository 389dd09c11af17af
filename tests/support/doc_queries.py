"""The ```logql blocks of README.md and docs/*.md, found afresh on every run (pages move and grow)."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["documented_logql"]

REPO = Path(__file__).resolve().parents[2]


def documented_logql() -> list[tuple[str, str]]:
    """(page relative to the repository, query) of every ```logql block, in page order."""
    found = []
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for query in re.findall(r"```logql\n(.*?)\n```", doc.read_text(encoding="utf-8"), flags=re.DOTALL):
            found.append((doc.relative_to(REPO).as_posix(), query))
    return found
