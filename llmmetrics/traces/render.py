"""Print trace records for a person (an aligned table, an agent run as a tree) or for a program (JSON lines).

Numbers are shown in the unit a reader thinks in: latency as ``812 ms`` / ``3.21 s``, cost as ``$0.012300``
(always six decimals), tokens with thousands separators. Missing values (no usage, unpriced model) show as ``-``, never as 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import IO, Any

__all__ = ["format_ms", "format_tokens", "format_usd", "plural", "render_json_lines", "render_table", "render_tree"]

FAILED = "✗"
OK = "✓"
USD_DECIMALS = 6


def format_ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1000:
        return f"{value:.0f} ms"
    if value < 60_000:
        return f"{value / 1000:.2f} s"
    return f"{value / 60_000:.1f} min"


def format_usd(value: float | None) -> str:
    """Dollars to the micro-dollar everywhere (``$0.000027``, ``$12.500000``): one call of a small model
    costs a few millionths, and one precision keeps a column's decimal points in line."""
    if value is None:
        return "-"
    return f"${value:,.{USD_DECIMALS}f}"


def format_tokens(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def format_time(record: Mapping[str, Any]) -> str:
    """Call start in UTC to the millisecond; falls back to the record's own ``timestamp`` text."""
    ts_ns = record.get("ts_ns")
    if isinstance(ts_ns, int):
        moment = datetime.fromtimestamp(ts_ns // 1_000_000_000, timezone.utc)
        return moment.strftime("%Y-%m-%d %H:%M:%S") + f".{ts_ns // 1_000_000 % 1000:03d}"
    return str(record.get("timestamp") or "-")


def _io_tokens(record: Mapping[str, Any]) -> str:
    inp, out = record.get("input_tokens"), record.get("output_tokens")
    if inp is None and out is None:
        return "-"
    return f"{format_tokens(inp)} → {format_tokens(out)}"


def _error_text(record: Mapping[str, Any], width: int = 48) -> str:
    error = record.get("error")
    if not isinstance(error, Mapping):
        return ""
    text = str(error.get("type") or "error")
    if error.get("status_code"):
        text += f" {error['status_code']}"
    message = error.get("message")
    if message:
        text += f": {message}"
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _what(record: Mapping[str, Any]) -> str:
    if record.get("kind") == "run":
        return f"run {record.get('run_name') or '?'}"
    return str(record.get("model") or "?")


_COLUMNS: tuple[tuple[str, str], ...] = (
    # (header, alignment) — numbers right-aligned so magnitudes line up
    ("TIME (UTC)", "<"), ("", "<"), ("MODEL / RUN", "<"), ("OP", "<"), ("LATENCY", ">"), ("TOKENS IN → OUT", ">"),
    ("COST", ">"), ("USER", "<"), ("TRACE ID", "<"), ("ERROR", "<"),
)


def _row(record: Mapping[str, Any]) -> list[str]:
    return [
        format_time(record),
        FAILED if record.get("status") == "error" else OK,
        _what(record),
        str(record.get("operation") or ("run" if record.get("kind") == "run" else "-")),
        format_ms(record.get("latency_ms")),
        _io_tokens(record),
        format_usd(record.get("cost_usd")),
        str(record.get("user_id") or "-"),
        str(record.get("trace_id") or "-"),
        _error_text(record),
    ]


def render_table(records: Sequence[Mapping[str, Any]], out: IO[str]) -> None:
    """An aligned table, one record per line, header first; the error column last as it is the widest."""
    rows = [[header for header, _ in _COLUMNS]] + [_row(r) for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    for row in rows:
        cells = [f"{cell:{align}{width}}" for cell, (_, align), width in zip(row, _COLUMNS, widths)]
        out.write("  ".join(cells).rstrip() + "\n")


def render_json_lines(lines: Iterable[bytes], out: IO[str]) -> None:
    """The records exactly as stored, one JSON object per line, for ``jq`` and friends."""
    for line in lines:
        out.write(line.decode("utf-8", "replace") + "\n")


def render_tree(trace_id: str, records: Sequence[Mapping[str, Any]], out: IO[str]) -> None:
    """One agent run as a tree: run records with their calls (and nested runs) beneath, by start time.

    The failing step is marked ``✗``; a totals line sums the calls (the model work the run paid for).
    """
    if not records:
        out.write(f"no records with trace id {trace_id}\n")
        return
    runs = {r.get("span_id"): r for r in records if r.get("kind") == "run"}
    children: dict[Any, list[Mapping[str, Any]]] = {}
    roots: list[Mapping[str, Any]] = []
    for record in records:
        parent = record.get("parent_span_id")
        if parent in runs and parent != record.get("span_id"):
            children.setdefault(parent, []).append(record)
        else:
            roots.append(record)

    def by_time(r: Mapping[str, Any]) -> int:
        return r.get("ts_ns") or 0

    failed_calls = {r.get("failed_call_id") for r in runs.values() if r.get("failed_call_id")}
    out.write(f"trace {trace_id}\n")
    if not runs:
        out.write("(no run record in this trace: the run may still be going on, or these calls ran outside one)\n")

    def write(node: Mapping[str, Any], prefix: str, last: bool) -> None:
        branch = "└─ " if last else "├─ "
        out.write(prefix + branch + _tree_line(node, node.get("call_id") in failed_calls) + "\n")
        kids = sorted(children.get(node.get("span_id"), []), key=by_time) if node.get("kind") == "run" else []
        for index, kid in enumerate(kids):
            write(kid, prefix + ("   " if last else "│  "), index == len(kids) - 1)

    ordered_roots = sorted(roots, key=by_time)
    for index, root in enumerate(ordered_roots):
        write(root, "", index == len(ordered_roots) - 1)
    out.write(_totals_line(records) + "\n")


def plural(count: int, noun: str) -> str:
    """``1 error``, ``2 errors``, with thousands separators."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def _steps(count: Any) -> str:
    return "? steps" if count is None else plural(count, "step")


def _tree_line(record: Mapping[str, Any], failed_step: bool) -> str:
    mark = FAILED if record.get("status") == "error" else OK
    if record.get("kind") == "run":
        parts = [
            f"{mark} run {record.get('run_name') or '?'}",
            format_ms(record.get("latency_ms")),
            f"model wait {format_ms(record.get('model_wait_ms'))}",
            _steps(record.get("step_count")),
        ]
    else:
        parts = [
            f"{mark} {record.get('operation') or 'call'} {record.get('model') or '?'}",
            format_ms(record.get("latency_ms")),
        ]
        if record.get("ttft_ms") is not None:
            parts.append(f"ttft {format_ms(record['ttft_ms'])}")
    parts.append(f"tokens {_io_tokens(record)}")
    parts.append(format_usd(record.get("cost_usd")))
    if record.get("kind") != "run" and record.get("call_id"):
        parts.append(f"call {record['call_id']}")
    error = _error_text(record, width=80)
    if error:
        parts.append(error)
    if failed_step:
        parts.append("← failed step")
    return "  ".join(parts)


def _totals_line(records: Sequence[Mapping[str, Any]]) -> str:
    calls = [r for r in records if r.get("kind", "call") == "call"]
    failed = sum(1 for r in calls if r.get("status") == "error")
    latency = sum(r.get("latency_ms") or 0.0 for r in calls)
    inp = sum(r.get("input_tokens") or 0 for r in calls)
    out = sum(r.get("output_tokens") or 0 for r in calls)
    priced = [r["cost_usd"] for r in calls if r.get("cost_usd") is not None]
    # a failed call without usage costs nothing knowable; "unpriced" means a success the price table lacks
    unpriced = sum(1 for r in calls if r.get("cost_usd") is None and r.get("status") != "error")
    line = (
        f"totals: {plural(len(calls), 'call')}, {failed} failed · model time {format_ms(latency)} · "
        f"tokens {format_tokens(inp)} in / {format_tokens(out)} out · "
        f"cost {format_usd(sum(priced)) if priced or not unpriced else 'n/a'}"
    )
    if unpriced:
        line += f" ({unpriced} unpriced)"
    return line

