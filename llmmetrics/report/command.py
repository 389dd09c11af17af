"""``llmmetrics report``: the dashboard as one HTML file, from the local trace files or from Loki.

It takes the filters and the sources of ``llmmetrics traces`` (``--since``, ``--service``, ``--file``,
``--loki-url`` …), reads every matching record once, and writes a page that needs nothing to be viewed. The
page holds trace ids, users and error messages (never prompts), so it is created ``0600``.

    llmmetrics report --since 1d -o llm-report.html
    llmmetrics report --loki-url http://loki:3100 --since 6h --service checkout -o incident.html
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import io
import os
import shlex
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from ..config import Config, ConfigError
from ..private_files import open_private
from ..stack.options import StackOptions
from ..traces.cli import (Source, add_filter_arguments, add_source_arguments, config_from_env, query_from_args,
                          source_for)
from ..traces.filters import Query, QueryError
from ..traces.local import NoTraceFiles
from ..traces.loki_client import LokiError
from ..traces.render import render_tree
from .data import ReportData

__all__ = ["DEFAULT_OUTPUT", "ReportOptions", "add_command", "report_demo_run", "run", "write_report"]

DEFAULT_OUTPUT = "llmmetrics-report.html"
EXTRA_MISSING = "llmmetrics report needs the report extra ({name} is missing): pip install 'llmmetrics[report]'"

_EXAMPLES = """\
examples:
  llmmetrics report --since 1d -o llm-report.html                 # the local trace files, rotated ones too
  llmmetrics report --loki-url http://loki:3100 --since 6h --service checkout -o incident.html
  llmmetrics report --model gpt-4o --user u-42 --since 7d         # any filter of llmmetrics traces
"""

#: Filter options as ``llmmetrics traces`` spells them (attribute, option), for the page's "same numbers" lines.
_FILTER_OPTIONS = (
    ("status", "--status"), ("model", "--model"), ("provider", "--provider"), ("operation", "--operation"),
    ("error_type", "--error-type"), ("user", "--user"), ("request_id", "--request-id"), ("trace_id", "--trace-id"),
    ("call_id", "--call-id"), ("service", "--service"), ("env", "--env"), ("min_latency", "--min-latency"),
    ("max_latency", "--max-latency"), ("min_cost", "--min-cost"), ("max_cost", "--max-cost"), ("since", "--since"),
    ("from_time", "--from"), ("until", "--until"), ("grep", "--grep"), ("file", "--file"), ("loki_url", "--loki-url"),
    ("loki_tenant", "--loki-tenant"),
)


@dataclasses.dataclass(frozen=True)
class ReportOptions:
    """How much the tables show and which thresholds the panels draw."""

    thresholds: StackOptions = dataclasses.field(default_factory=StackOptions)
    top: int = 10
    runs: int = 3
    title: str | None = None


def add_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``report`` on the ``llmmetrics`` command's subparsers."""
    defaults = StackOptions()
    parser = subparsers.add_parser(
        "report", help="write the dashboard as one offline HTML file (local trace files or Loki)",
        description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1], epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_filter_arguments(parser)
    add_source_arguments(parser)
    page = parser.add_argument_group("report")
    page.add_argument("-o", "--output", default=DEFAULT_OUTPUT, metavar="PATH",
                      help=f"the HTML file to write (default {DEFAULT_OUTPUT}; created 0600)")
    page.add_argument("--title", help="the page's heading (default: the services the calls came from)")
    page.add_argument("--top", type=int, default=10, metavar="N", help="rows of the slowest and failed calls tables")
    page.add_argument("--runs", type=int, default=3, metavar="N", help="agent runs drawn as trees (most failed steps)")
    page.add_argument("--error-rate-threshold", type=float, default=defaults.error_rate_threshold, metavar="RATIO",
                      help="the error-rate line, as `llmmetrics generate` takes it (default %(default)s)")
    page.add_argument("--latency-slo-seconds", type=float, default=defaults.latency_slo_seconds, metavar="S",
                      help="the p95 latency line, as `llmmetrics generate` takes it (default %(default)s)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Write the report; exit 0 when written, 2 for a bad option or a missing extra, 1 when the source fails."""
    code, message, footer = _produce(args)
    if code:
        sys.stderr.write(message + "\n")
    else:
        print(message, flush=True)
        sys.stderr.write(footer + "\n")
    return code


def _produce(args: argparse.Namespace) -> tuple[int, str, str]:
    """Write the page; the exit code, what to say (``wrote PATH (N KB)``, or what went wrong) and the source's
    footer (what was read)."""
    try:
        import pygal  # noqa: F401  (the report extra: only this command needs it)
    except ImportError as error:
        return 2, EXTRA_MISSING.format(name=error.name or "pygal"), ""
    try:
        config = config_from_env()  # as `traces` reads it: only the settings it uses must be valid
        query = query_from_args(args)
        query = dataclasses.replace(query, kind=args.kind or "all")
        options = ReportOptions(
            thresholds=StackOptions(error_rate_threshold=args.error_rate_threshold,
                                    latency_slo_seconds=args.latency_slo_seconds),
            top=args.top, runs=args.runs, title=args.title)
        if args.top < 1 or args.runs < 0 or args.scan_limit < 1:
            raise QueryError("--top and --scan-limit must be at least 1, --runs at least 0")
    except (ConfigError, QueryError, ValueError) as error:
        return 2, f"llmmetrics report: {error}", ""
    service = args.service or config.service
    try:
        source = source_for(args, config, query, service)
        if source is None:
            return 2, "llmmetrics report: no trace file configured: pass --file PATH or --loki-url URL", ""
        footer, size = write_report(args.output, source, lambda q: source_for(args, config, q, service), query,
                                    options, traces_options=_traces_options(args))
    except (NoTraceFiles, LokiError) as error:
        return 1, f"llmmetrics report: {error}", ""
    except OSError as error:  # a trace file without read permission, an output directory that is not there
        return 1, f"llmmetrics report: {error}", ""
    return 0, f"wrote {os.path.abspath(args.output)} ({size / 1000:,.0f} KB)", footer


def report_demo_run(config: Config, started_ns: int, path: str = DEFAULT_OUTPUT) -> str:
    """The line ``llmmetrics demo`` adds to its "where to look next": this run's records as one page, written
    by the command itself, or why there is none."""
    from ..cli import build_parser

    label = f"  {'this run as one HTML page:':<30}"
    if not (config.trace_file or config.loki_url):
        return label + "none: the run kept no trace records (no trace file, no Loki)"
    since = datetime.fromtimestamp(started_ns // 10**9, timezone.utc).isoformat()  # whole seconds: shorter to read
    source = ["--file", config.trace_file] if config.trace_file else ["--loki-url", config.loki_url]
    args = build_parser().parse_args(["report", *source, "--service", config.service, "--from", since, "-o", path])
    code, message, _ = _produce(args)
    return label + (f"{os.path.abspath(path)} (open it in a browser)" if code == 0 else message)


def write_report(path: str, source: Source, open_source: Callable[[Query], Source | None], query: Query,
                 options: ReportOptions, *, traces_options: str) -> tuple[str, int]:
    """Read the records of ``source`` (matching ``query``) and write the page to ``path``; ``open_source``
    opens the same backend for another query (each tree's trace id).

    Returns what the source says it read (the ``traces`` footer) and the page's size in bytes.
    """
    from .page import PageInfo, render_page  # pygal, through the charts
    from .panels import panel_data

    data = ReportData(top=options.top, runs=options.runs)
    # as in `traces`: millions of short-lived records without reference cycles; the cyclic GC only costs
    collecting = gc.isenabled()
    gc.disable()
    try:
        data.add_all(match.record for match in source.matches(None))
        footer = source.footer()
        for run_record in data.worst_runs():
            trace_id = run_record["trace_id"]
            tree_source = open_source(dataclasses.replace(query, trace_id=trace_id, kind="all"))
            assert tree_source is not None  # the same backend as `source`
            text = io.StringIO()
            render_tree(trace_id, [match.record for match in tree_source.matches(None)], text)
            tree_source.footer()  # (the Loki source closes its client there)
            data.trees[trace_id] = text.getvalue()
    finally:
        if collecting:
            gc.enable()
    thresholds = options.thresholds
    title = options.title or _title(data, query)
    info = PageInfo(title=title, source=footer, traces_options=traces_options, generated_ns=time.time_ns(),
                    thresholds=f"error-rate line {thresholds.error_rate_threshold:.0%}, "
                               f"latency SLO {thresholds.latency_slo_seconds:g} s")
    document = render_page(data, panel_data(data.series, thresholds, unpriced=data.spend.missing_successes), info,
                           error_threshold=thresholds.error_rate_threshold)
    encoded = document.encode("utf-8")
    with open(path, "wb", opener=open_private) as out:
        out.write(encoded)
    return footer, len(encoded)


def _title(data: ReportData, query: Query) -> str:
    services = sorted(data.services, key=lambda name: -data.services[name])
    shown = ", ".join(services[:3]) + (f" and {len(services) - 3} more" if len(services) > 3 else "")
    return "LLM calls" + (f" of {shown}" if shown else "") + (f" · {query.model}" if query.model else "")


def _traces_options(args: argparse.Namespace) -> str:
    """The report's filters and source as ``llmmetrics traces`` options (for the "same numbers" lines)."""
    parts = []
    for attribute, option in _FILTER_OPTIONS:
        value = getattr(args, attribute, None)
        if value:
            parts += [option, shlex.quote(str(value))]
    return " ".join(parts)
