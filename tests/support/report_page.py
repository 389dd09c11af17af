"""Read back what a report page holds: its totals, spend rows, call rows and trees, from the HTML itself.

The page carries each exact number in ``data-*`` attributes beside the text a person reads, so a test can
compare the page (not the code that made it) with ``llmmetrics traces``.

>>> page = ReportPage.read(Path("llmmetrics-report.html"))                           # doctest: +SKIP
>>> page.tables["model"]["gpt-4o-mini"]["records"]
"""

from __future__ import annotations

import dataclasses
import html.parser
from pathlib import Path
from typing import Any

__all__ = ["ReportPage"]


@dataclasses.dataclass
class ReportPage:
    """``totals``: card key → data-value; ``tables``: table key → row key → its data-* attributes (the
    ``total`` and ``rest`` rows under ``@total``/``@rest``); ``calls``: table key → call ids in order;
    ``trees``: trace id → the tree's text; ``panels``: panel id → data-points."""

    text: str
    totals: dict[str, str] = dataclasses.field(default_factory=dict)
    tables: dict[str, dict[str, dict[str, str]]] = dataclasses.field(default_factory=dict)
    calls: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    trees: dict[str, str] = dataclasses.field(default_factory=dict)
    panels: dict[str, int] = dataclasses.field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> ReportPage:
        page = cls(path.read_text(encoding="utf-8"))
        _Reader(page).feed(page.text)
        return page


class _Reader(html.parser.HTMLParser):
    def __init__(self, page: ReportPage) -> None:
        super().__init__(convert_charrefs=True)
        self.page = page
        self.table: str | None = None
        self.tree: str | None = None
        self.in_pre = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found: dict[str, Any] = {name: value or "" for name, value in attrs}
        if "data-total" in found and "data-value" in found:
            self.page.totals[found["data-total"]] = found["data-value"]
        if "data-table" in found:
            self.table = found["data-table"]
            self.page.tables.setdefault(self.table, {})
            self.page.calls.setdefault(self.table, [])
        if tag == "tr" and self.table is not None:
            row = {name[5:]: value for name, value in found.items() if name.startswith("data-")}
            if "call-id" in row:
                self.page.calls[self.table].append(row["call-id"])
            elif "key" in row:
                self.page.tables[self.table][row["key"]] = row
            elif "row" in row:
                self.page.tables[self.table]["@" + row["row"]] = row
        if "data-trace" in found:
            self.tree = found["data-trace"]
            self.page.trees[self.tree] = ""
        if tag == "pre" and self.tree is not None:
            self.in_pre = True
        if tag == "figure" and "data-points" in found:
            self.page.panels[found.get("id", "")] = int(found["data-points"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre":
            self.in_pre = False
            self.tree = None
        if tag == "table":
            self.table = None

    def handle_data(self, data: str) -> None:
        if self.in_pre and self.tree is not None:
            self.page.trees[self.tree] += data
