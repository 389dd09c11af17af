"""The report as one self-contained HTML page: inline CSS and SVG, no script, nothing fetched.

The page's Content-Security-Policy allows no script and no network request of any kind (``default-src
'none'``), so it opens the same offline, attached to a ticket or from a mail client, and a string from a
record (a user id, an error message) can never run; every such string is HTML-escaped as well. Colours are
CSS variables with a ``prefers-color-scheme: dark`` set, so the page follows the reader's light or dark
theme, charts included (:mod:`.charts`).

The page shows, top to bottom: the totals, the four panels, spend by model, by user and by feature flag
(unpriced calls counted apart, never as $0), the slowest and the latest failed calls, and the agent runs
with the most failed steps as the tree ``llmmetrics traces --trace-id`` prints. Each table says which
``llmmetrics traces`` command gives the same numbers.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from ..traces.aggregate import Group
from ..traces.render import FAILED, format_ms, format_time, format_tokens, format_usd
from .charts import render_chart, series_colour
from .data import ReportData
from .panels import PanelData

__all__ = ["PageInfo", "render_page"]

#: Users listed one by one in the spend table; the rest are summed in one row.
USERS_SHOWN = 15
#: Characters of an error message shown in a table (all of it on hover)
_MESSAGE_SHOWN = 110


@dataclasses.dataclass(frozen=True)
class PageInfo:
    """What the page says about itself: its title, where the records came from, how to ask ``traces``."""

    title: str
    #: e.g. "scanned 12.0 MB in 3 file(s) in 0.41 s"
    source: str
    #: the report's own filters and source as ``llmmetrics traces`` options, e.g. "--since 1d --file t.jsonl"
    traces_options: str
    generated_ns: int
    #: e.g. "error rate 5 %, latency SLO 2 s"
    thresholds: str


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _utc(ts_ns: int | None) -> str:
    if ts_ns is None:
        return "-"
    return datetime.fromtimestamp(ts_ns / 1e9, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _duration(ns: int) -> str:
    seconds = ns / 1e9
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _command(info: PageInfo, options: str) -> str:
    text = f"llmmetrics traces {options} {info.traces_options}".strip()
    return f'<p class="same">same numbers: <code>{_e(" ".join(text.split()))}</code></p>'


def _card(label: str, value: str, detail: str = "", *, key: str, exact: Any = None, bad: bool = False,
          wide: bool = False) -> str:
    """A total; ``exact`` (the unrounded number) goes into ``data-value`` for the tests to compare."""
    detail_html = f'<div class="detail">{detail}</div>' if detail else ""
    css = "card" + (" bad" if bad else "") + (" wide" if wide else "")
    exact_html = f' data-value="{_e(repr(exact))}"' if exact is not None else ""
    return (f'<div class="{css}" data-total="{key}"{exact_html}><div class="label">{_e(label)}</div>'
            f'<div class="value">{value}</div>{detail_html}</div>')


def _compact(count: int) -> str:
    """``11,822``, ``1.2 M``, ``3.40 G``: a count that fits a card."""
    for unit, scale in (("G", 1e9), ("M", 1e6)):
        if count >= scale:
            return f"{count / scale:,.{1 if count >= 10 * scale else 2}f} {unit}"
    return f"{count:,}"


def _range(first_ns: int, last_ns: int) -> str:
    first, last = _utc(first_ns), _utc(last_ns)
    if first[:10] == last[:10]:
        last = last[11:]
    return f"{first} → {last} UTC"


def _totals(data: ReportData, error_threshold: float) -> str:
    spend = data.spend
    unpriced = spend.missing_successes
    error_share = data.errors / data.calls if data.calls else 0.0
    cost = format_usd(spend.summed.value) if spend.summed.count else "n/a"
    cost_detail = (f"+ {unpriced:,} unpriced call{'s' if unpriced != 1 else ''}, not counted as $0" if unpriced
                   else "every call priced")
    tokens = data.tokens
    latencies = " · ".join(f'<span title="{name}">{_e(format_ms(data.quantile_ms(q)))}</span>'
                           for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)))
    covered = data.first_ns is not None and data.last_ns is not None
    cards = [
        _card("Calls", f"{data.calls:,}", f"{data.runs:,} agent runs, {data.failed_runs:,} failed", key="calls",
              exact=data.calls),
        _card("Errors", f"{data.errors:,}", f"{error_share:.1%} of calls", key="errors", exact=data.errors,
              bad=error_share > error_threshold),
        _card("Latency p50 · p95 · p99", latencies, "every call, within 1 %", key="latency", wide=True),
        _card("Tokens", _e(_compact(round(tokens.summed.value)) if tokens.summed.count else "-"),
              f"{format_tokens(data.input_tokens)} in, {format_tokens(data.output_tokens)} out", key="tokens",
              exact=tokens.summed.value if tokens.summed.count else None),
        _card("Cost", _e(cost), _e(cost_detail), key="cost",
              exact=spend.summed.value if spend.summed.count else None),
        _card("Time range", _e(_duration(data.last_ns - data.first_ns)) if covered else "-",  # type: ignore[operator]
              _e(_range(data.first_ns, data.last_ns)) if covered else "no calls", key="range"),  # type: ignore[arg-type]
        _card("Sampled out", f"{data.sampled_out:,}", "calls kept without prompts, numbers kept", key="sampled",
              exact=data.sampled_out),
    ]
    return f'<section class="totals">{"".join(cards)}</section>'


def _panel(data: PanelData, colours: Mapping[str, int]) -> str:
    panel = data.panel
    legend = [f'<span class="key"><i style="background:{series_colour(s.name, colours)}"></i>{_e(s.name)}</span>'
              for s in data.series]
    if data.threshold is not None:
        legend.append(f'<span class="key threshold"><i></i>{_e(data.threshold_label)}</span>')
    return (f'<figure class="panel" id="panel-{panel.key}" data-points="{data.points}">'
            f'<figcaption><h2>{_e(panel.title)}</h2><p>{_e(panel.description)}</p></figcaption>'
            f'{render_chart(data, colours)}<div class="legend">{"".join(legend)}</div>'
            f'<p class="note">{_e(data.note)} · Grafana: “{_e(panel.grafana_title)}”</p></figure>')


def _bar(share: float) -> str:
    return f'<span class="bar" style="width:{max(0.0, min(share, 1.0)) * 100:.1f}%"></span>'


def _spend_table(title: str, by: str, groups: list[Group], info: PageInfo, *, limit: int | None = None,
                 what: str = "") -> str:
    """Calls, spend, average per priced call and unpriced calls per group; the biggest spenders first."""
    shown = groups if limit is None else groups[:limit]
    rest = groups[len(shown):]
    top = max((g.summed.value for g in groups), default=0.0) or 1.0
    rows = []
    for group in shown:
        rows.append(_spend_row(_e(group.key), group, top))
    if rest:
        rows.append(_spend_row(f"{len(rest):,} more {what}", Group.combined("rest", rest), top, css="rest", bar=False))
    if len(groups) > 1:
        rows.append(_spend_row("total", Group.combined("total", groups), top, css="total", bar=False))
    return (f'<div class="table" data-table="{_e(by)}"><h3>{_e(title)}</h3><table><thead><tr><th>{_e(by)}</th>'
            '<th class="n">calls</th><th class="n">spend</th><th class="n">per priced call</th>'
            '<th class="n">unpriced</th><th class="share"></th></tr></thead><tbody>'
            + "".join(rows) + f"</tbody></table>{_command(info, f'--sum cost --by {by}')}</div>")


def _spend_row(label: str, group: Group, top: float, *, css: str = "", bar: bool = True) -> str:
    """One group's row; its ``data-*`` attributes carry the exact numbers (what the tests compare with
    ``llmmetrics traces --format json``)."""
    priced = group.summed.count
    spend = format_usd(group.summed.value) if priced else "n/a"
    average = format_usd(group.average) if priced else "n/a"
    unpriced = f"{group.missing_successes:,}" if group.missing_successes else ""
    share = _bar(group.summed.value / top) if bar and priced else ""
    which = f'data-row="{css}"' if css else f'data-key="{_e(group.key)}"'  # "total" may be a user's name
    total = repr(group.summed.value) if priced else ""  # no priced call: no sum (never 0)
    exact = (f' {which} data-records="{group.records}" data-sum="{total}" '
             f'data-priced="{priced}" data-missing="{group.missing}" data-unpriced="{group.missing_successes}"')
    return (f'<tr class="{css}"{exact}><td class="key">{label}</td><td class="n">{group.records:,}</td>'
            f'<td class="n">{_e(spend)}</td><td class="n">{_e(average)}</td><td class="n unpriced">{unpriced}</td>'
            f'<td class="share">{share}</td></tr>')


def _error_cell(record: Mapping[str, Any]) -> str:
    error = record.get("error")
    if not isinstance(error, Mapping):
        return ""
    head = str(error.get("type") or "error") + (f" {error['status_code']}" if error.get("status_code") else "")
    message = " ".join(str(error.get("message") or "").split())
    short = message if len(message) <= _MESSAGE_SHOWN else message[: _MESSAGE_SHOWN - 1] + "…"
    return f'<b>{_e(head)}</b> <span class="msg" title="{_e(message)}">{_e(short)}</span>'


def _tokens(record: Mapping[str, Any]) -> str:
    inp, out = record.get("input_tokens"), record.get("output_tokens")
    return "-" if inp is None and out is None else f"{format_tokens(inp)} → {format_tokens(out)}"


def _calls_table(title: str, key: str, records: Iterable[Mapping[str, Any]], info: PageInfo, options: str) -> str:
    rows = []
    for record in records:
        failed = record.get("status") == "error"
        rows.append(
            f'<tr class="{"failed" if failed else ""}" data-call-id="{_e(record.get("call_id") or "")}">'
            f'<td class="time">{_e(format_time(record))}</td>'
            f'<td>{_e(record.get("model") or "?")}</td><td>{_e(record.get("operation") or "-")}</td>'
            f'<td class="n">{_e(format_ms(record.get("latency_ms")))}</td><td class="n">{_e(_tokens(record))}</td>'
            f'<td class="n">{_e(format_usd(record.get("cost_usd")))}</td><td>{_e(record.get("user_id") or "-")}</td>'
            f'<td class="id">{_e(record.get("trace_id") or "-")}</td><td class="error">{_error_cell(record)}</td></tr>')
    body = "".join(rows) or '<tr><td colspan="9" class="empty">none</td></tr>'
    return (f'<div class="table wide" data-table="{key}"><h3>{_e(title)}</h3><table><thead><tr>'
            '<th>time (UTC)</th><th>model</th><th>op</th><th class="n">latency</th><th class="n">tokens in → out</th>'
            '<th class="n">cost</th><th>user</th><th>trace id</th><th>error</th></tr></thead>'
            f"<tbody>{body}</tbody></table>{_command(info, options)}</div>")


def _error_types(groups: list[Group], info: PageInfo) -> str:
    rows = "".join(f'<tr data-key="{_e(g.key)}" data-records="{g.records}"><td>{_e(g.key)}</td>'
                   f'<td class="n">{g.records:,}</td></tr>' for g in groups)
    return (f'<div class="table" data-table="error.type"><h3>Failed calls by error type</h3><table><thead><tr>'
            f'<th>error type</th><th class="n">calls</th></tr></thead><tbody>'
            f'{rows or "<tr><td colspan=2 class=empty>none</td></tr>"}</tbody></table>'
            f"{_command(info, '--status error --by error.type')}</div>")


def _tree(trace_id: str, text: str, info: PageInfo) -> str:
    lines = []
    for line in text.splitlines():
        escaped = _e(line)
        lines.append(f'<span class="bad">{escaped}</span>' if FAILED in line else escaped)
    return (f'<div class="tree" data-trace="{_e(trace_id)}"><pre>' + "\n".join(lines) + "</pre>"
            f"{_command(info, f'--trace-id {trace_id}')}</div>")


def render_page(data: ReportData, panels: list[PanelData], info: PageInfo, *, error_threshold: float) -> str:
    """The whole HTML document."""
    models = sorted(data.series.models, key=lambda m: (-data.series.models[m], m))
    colours = {model: index for index, model in enumerate(models)}
    flags = "".join(_spend_table(f"Spend by feature flag {name}", f"feature_flags.{name}", aggregation.groups(), info)
                    for name, aggregation in sorted(data.by_flag.items()))
    if data.flags_not_tabled:
        flags += f'<p class="note">not tabled: {_e(", ".join(sorted(map(str, data.flags_not_tabled))))}</p>'
    worst = data.worst_runs()
    trees = "".join(_tree(run["trace_id"], data.trees.get(run["trace_id"], ""), info) for run in worst)
    generated = _utc(info.generated_ns)
    body = (
        f'<header><h1>{_e(info.title)}</h1><p class="meta">{_e(info.source)} · generated {_e(generated)} UTC · '
        f"{_e(info.thresholds)}</p></header>"
        + _totals(data, error_threshold)
        + '<section class="panels">' + "".join(_panel(p, colours) for p in panels) + "</section>"
        + '<h2 class="section">Spend</h2><section class="tables">'
        + _spend_table("Spend by model", "model", data.by_model.groups(), info)
        + _spend_table("Spend by user", "user_id", data.by_user.groups(), info, limit=USERS_SHOWN, what="users")
        + flags + "</section>"
        + '<h2 class="section">Slowest and failed calls</h2><section class="tables">'
        + _calls_table("Slowest calls", "slowest", data.slowest.records(), info,
                       f"--sort -latency --limit {data.slowest.limit}")
        + _calls_table("Latest failed calls", "failed", data.failed.records(), info,
                       f"--status error --limit {data.failed.limit}")
        + _error_types(data.error_types.groups(), info) + "</section>"
        + '<h2 class="section">Agent runs with the most failed steps</h2><section class="trees">'
        + (trees or '<p class="empty">no agent run had a failed step</p>') + "</section>"
        + '<footer>Written by <code>llmmetrics report</code>. Every number comes from the trace records through the '
          "same scan and totals as <code>llmmetrics traces</code>; thresholds are the generated dashboards' and "
          "alert rules'. The page loads nothing and runs no script.</footer>"
    )
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        f"<title>{_e(info.title)}</title><style>{STYLE}</style></head><body>{body}</body></html>\n"
    )


STYLE = """
:root{--bg:#ffffff;--fg:#1f2328;--muted:#59636e;--grid:#e3e8ee;--card:#f6f8fa;--border:#d1d9e0;
--accent:#0969da;--threshold:#cf222e;--bad:#cf222e;--bar:#0969da33;
--c0:#4e79a7;--c1:#f28e2b;--c2:#59a14f;--c3:#b07aa1;--c4:#76b7b2;--c5:#edc948;--c6:#9c755f;--c7:#ff9da7}
@media (prefers-color-scheme: dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;--grid:#262c36;
--card:#151b23;--border:#3d444d;--accent:#4493f8;--threshold:#f85149;--bad:#f85149;--bar:#4493f840;
--c0:#7aa6da;--c1:#ffae5c;--c2:#8cd17d;--c3:#d4a6c8;--c4:#86d4cc;--c5:#f1ce63;--c6:#c9a487;--c7:#ffbec6}}
*{box-sizing:border-box}
body{margin:0 auto;max-width:1360px;padding:24px 28px 40px;background:var(--bg);color:var(--fg);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
h1{font-size:22px;margin:0 0 4px}h2,h3{margin:0}
.meta,.note,.same,footer{color:var(--muted);font-size:12.5px}
.meta{margin:0 0 18px}
code,pre,.id,.time{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace}
code{font-size:12px}
.totals{display:grid;grid-template-columns:repeat(auto-fit,minmax(138px,1fr));gap:10px;margin-bottom:20px}
.card{background:var(--card);border:1px solid var(--border);border-radius:8px;padding:10px 14px}
.card .label{color:var(--muted);font-size:12.5px}
.card .value{font-size:22px;font-weight:600;margin:2px 0;white-space:nowrap}
.card.wide{grid-column:span 2}
.card .detail{color:var(--muted);font-size:12px}
.card.bad .value{color:var(--bad)}
.panels{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:16px}
.panel{margin:0;background:var(--card);border:1px solid var(--border);border-radius:8px;padding:12px 14px 8px}
.panel h2{font-size:15px}.panel figcaption p{margin:2px 0 4px;color:var(--muted);font-size:12.5px}
.panel svg{width:100%;height:auto;display:block}
.panel .note{margin:2px 0 0}
.legend{display:flex;flex-wrap:wrap;gap:2px 14px;font-size:12.5px;margin-top:2px}
.legend .key{display:inline-flex;align-items:center;gap:5px;white-space:nowrap}
.legend i{display:inline-block;width:12px;height:3px;border-radius:1px}
.legend .threshold i{height:0;border-top:2px dashed var(--threshold)}
h2.section{font-size:17px;margin:28px 0 10px}
.tables{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:16px;align-items:start}
.table{background:var(--card);border:1px solid var(--border);border-radius:8px;padding:12px 14px;overflow-x:auto}
.table.wide{grid-column:1/-1}
.table h3{font-size:14px;margin-bottom:6px}
table{border-collapse:collapse;width:100%;font-size:13px}
th{color:var(--muted);font-weight:500;text-align:left;border-bottom:1px solid var(--border);padding:4px 8px}
td{padding:3px 8px;border-bottom:1px solid var(--grid);vertical-align:top;white-space:nowrap}
td.error,td.key{white-space:normal}
.n{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
tr.total td{font-weight:600;border-bottom:0}tr.rest td{color:var(--muted)}
td.share{width:18%;min-width:50px}
.bar{display:block;height:10px;margin-top:4px;border-radius:2px;background:var(--accent);opacity:.55}
.unpriced{color:var(--bad)}
.id{font-size:11.5px;color:var(--muted)}.time{white-space:nowrap;font-size:12px}
tr.failed .error b{color:var(--bad)}
td.error{min-width:240px}.error .msg{color:var(--muted)}
.same{margin:6px 0 0}
.empty{color:var(--muted)}
.trees{display:grid;gap:12px}
.tree{background:var(--card);border:1px solid var(--border);border-radius:8px;padding:10px 14px;overflow-x:auto}
.tree pre{margin:0;font-size:12.5px;line-height:1.5}
.tree .bad{color:var(--bad)}
footer{margin-top:32px;border-top:1px solid var(--border);padding-top:10px}
"""
