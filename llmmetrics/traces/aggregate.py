"""``--sum FIELD --by FIELD``: totals per group, e.g. what a user costs per feature flag.

Both fields are dotted record paths (``feature_flags.new_prompt``, ``context.tenant``, ``error.type``) or the
sort aliases (``cost``, ``latency``, ``tokens``). Records whose summed field is missing (an unpriced model's
``cost_usd``) are counted apart rather than added as 0: a group none of whose calls is priced shows
``n/a (36 unpriced)``, so "$0" never hides "we do not know".

>>> groups = aggregate([{"cost_usd": 0.5, "feature_flags": {"new_prompt": True}}], "cost", "feature_flags.new_prompt")
>>> groups[0].key, groups[0].total
('true', 0.5)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any

import orjson

from .filters import SORT_ALIASES, path_getter
from .render import format_ms, format_tokens, format_usd

__all__ = ["Aggregation", "ExactSum", "Group", "aggregate", "render_groups_json", "render_groups_table"]

NONE_KEY = "(none)"


class ExactSum:
    """A sum of numbers kept exact in constant memory: its ``value`` is what ``math.fsum`` of them all gives.

    Every finite float is a whole number of 2**-1074 (the smallest positive float), so the sum is kept as
    one integer count of those; int / int division rounds correctly, as fsum does. The answer therefore does
    not depend on the order records arrived in (file vs Loki), and a million values cost no memory.

    >>> total = ExactSum()
    >>> for value in (1e16, 1.0, -1e16):   # sum() of these gives 0.0
    ...     total.add(value)
    >>> total.value, total.count
    (1.0, 3)
    """

    __slots__ = ("count", "_units")

    def __init__(self) -> None:
        self.count = 0
        self._units = 0

    def add(self, value: float) -> None:
        self.count += 1
        numerator, denominator = value.as_integer_ratio()  # denominator is a power of two
        self._units += numerator << (_SCALE_BITS + 1 - denominator.bit_length())

    def merge(self, other: ExactSum) -> None:
        self.count += other.count
        self._units += other._units

    @property
    def value(self) -> float:
        return self._units / _SCALE


_SCALE_BITS = 1074
_SCALE = 1 << _SCALE_BITS


@dataclasses.dataclass
class Group:
    """One ``--by`` value: how many records, the sum of the field over those that have it, how many lack it
    (and of those, how many are successes: for a cost, those are the unpriced calls)."""

    key: str
    records: int = 0
    missing: int = 0
    missing_successes: int = 0
    summed: ExactSum = dataclasses.field(default_factory=ExactSum, repr=False)

    @property
    def total(self) -> float | None:
        """The sum, or None when no record has the field (unknown, never 0)."""
        return self.summed.value if self.summed.count else None

    @property
    def average(self) -> float | None:
        return self.summed.value / self.summed.count if self.summed.count else None

    @classmethod
    def combined(cls, key: str, groups: Iterable[Group]) -> Group:
        """One group adding up ``groups`` (the grand total row)."""
        total = cls(key)
        for group in groups:
            total.records += group.records
            total.missing += group.missing
            total.missing_successes += group.missing_successes
            total.summed.merge(group.summed)
        return total


def _field(name: str | None) -> str | None:
    return SORT_ALIASES.get(name, name) if name else None


def _key_text(value: Any) -> str:
    if value is None:
        return NONE_KEY
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return str(value)


class Aggregation:
    """Groups filled one record at a time, so that one scan can feed several (the report's spend by model,
    by user and by feature flag); :func:`aggregate` is the one-question form."""

    def __init__(self, sum_field: str | None, by_field: str | None, *, earlier: Group | None = None) -> None:
        """``earlier``: records read before this aggregation began, none of which has ``by_field`` (a feature
        flag first seen mid-scan): they start its ``(none)`` group."""
        total_path, by_path = _field(sum_field), _field(by_field)
        self._group_of = path_getter(by_path) if by_path else (lambda record: "all")
        self._value_of = path_getter(total_path) if total_path else None
        self._groups: dict[Any, Group] = {}
        if earlier is not None and earlier.records:
            self._groups[NONE_KEY] = Group.combined(NONE_KEY, [earlier])

    def add(self, record: Mapping[str, Any]) -> None:
        raw = self._group_of(record)
        groups = self._groups
        group = groups.get(raw) if type(raw) is str else None
        if group is None:
            key = _key_text(raw)
            group = groups.get(key)
            if group is None:
                group = groups[key] = Group(key)
        group.records += 1
        if self._value_of is None:
            return
        value = self._value_of(record)
        if type(value) is float or type(value) is int:
            group.summed.add(value)
        else:
            group.missing += 1
            if record.get("status") != "error":
                group.missing_successes += 1

    def groups(self) -> list[Group]:
        """Largest total first; groups without any value of the field last."""
        return sorted(self._groups.values(), key=lambda g: (g.total is None, -(g.total or 0.0), -g.records, g.key))


def aggregate(records: Iterable[Mapping[str, Any]], sum_field: str | None, by_field: str | None) -> list[Group]:
    """Group ``records`` by ``by_field`` (one group when None) and sum ``sum_field``; largest total first."""
    aggregation = Aggregation(sum_field, by_field)
    for record in records:
        aggregation.add(record)
    return aggregation.groups()


def _is_cost(sum_field: str | None) -> bool:
    return (_field(sum_field) or "").endswith("cost_usd")


def _formatter(sum_field: str | None) -> Callable[[float | None], str]:
    path = _field(sum_field) or ""
    if _is_cost(sum_field):
        return format_usd
    if path.endswith("_ms"):
        return format_ms
    if path == "tokens" or path.endswith("_tokens"):
        return lambda v: format_tokens(None if v is None else round(v))
    return lambda v: "-" if v is None else f"{v:,.6g}"


def _note(group: Group, sum_field: str | None) -> str:
    """What the sum leaves out: ``(36 unpriced)`` for a cost (a failed call has no usage to price),
    ``(3 missing)`` for any other field."""
    if _is_cost(sum_field):
        return f"({group.missing_successes:,} unpriced)" if group.missing_successes else ""
    return f"({group.missing:,} missing)" if group.missing else ""


def render_groups_table(groups: list[Group], sum_field: str | None, by_field: str | None, out: IO[str]) -> None:
    """Aligned table: group, records, sum and average; a sum no record could give is ``n/a``, never 0, and
    what it leaves out is said beside it (``n/a (36 unpriced)``). The grand total comes last."""
    fmt = _formatter(sum_field)

    def shown(value: float | None) -> str:
        return "n/a" if value is None else fmt(value)

    rows = list(groups)
    if len(groups) > 1:
        rows.append(Group.combined("TOTAL", groups))
    header = [by_field or "", "RECORDS"]
    table = [[group.key, f"{group.records:,}"] for group in rows]
    if sum_field:
        # the note reads as part of the sum: amounts right-aligned, each note one space after its amount
        amounts = [shown(group.total) for group in rows]
        notes = [_note(group, sum_field) for group in rows]
        amount_width = max(len(a) for a in amounts)
        note_width = max(len(n) for n in notes)
        for row, amount, note, group in zip(table, amounts, notes, rows):
            row += [amount.rjust(amount_width) + (" " + note.ljust(note_width) if note_width else ""),
                    shown(group.average)]
        header += [f"SUM {sum_field}", f"AVG {sum_field}"]
    table.insert(0, header)
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for row in table:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])]
        out.write("  ".join(cells).rstrip() + "\n")


def render_groups_json(groups: list[Group], sum_field: str | None, by_field: str | None, out: IO[str]) -> None:
    """One JSON object per group: ``{"by": ..., "key": ..., "records": n, "sum": x, "missing": m}``; ``sum`` is
    null when no record has the field, and a cost sum also says how many successes were ``unpriced``."""
    for group in groups:
        row: dict[str, Any] = {"by": by_field, "key": group.key, "records": group.records}
        if sum_field:
            row.update({"field": sum_field, "sum": group.total, "missing": group.missing})
            if _is_cost(sum_field):
                row["unpriced"] = group.missing_successes
        out.write(orjson.dumps(row).decode() + "\n")
