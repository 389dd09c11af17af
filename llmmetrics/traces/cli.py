"""``llmmetrics traces``: ask the trace records a question from the terminal, on the local files or on Loki.

The same filters and the same output work on both backends: the local JSONL trace file (with its rotated
backups) by default, Loki when ``--loki-url`` is given or ``LLMMETRICS_LOKI_URL`` is set (``--file``
forces the local file). ``--print-logql`` prints the LogQL instead of running it, ready to paste into Grafana.

    llmmetrics traces --status error --model gpt-4o-mini --since 6h --sort -latency
    llmmetrics traces --trace-id 4bf92f3577b34da6a3ce929d0e0e4736
    llmmetrics traces --user u-42 --since 1d --sum cost_usd --by feature_flags.new_prompt
    llmmetrics traces --min-latency 3s --max-cost 0.10 --limit 20 --format json
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import itertools
import re
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from ..config import Config, ConfigError, from_env_or_defaults
from .aggregate import aggregate, render_groups_json, render_groups_table
from .filters import (
    SORT_ALIASES,
    Query,
    QueryError,
    SortOrder,
    parse_cost,
    parse_latency_ms,
    parse_time_ns,
)
from .local import LocalScan, Match, NoTraceFiles
from .logql import build_logql
from .loki_client import LokiClient, LokiError
from .render import render_json_lines, render_table, render_tree

__all__ = ["LocalSource", "LokiSource", "Source", "add_command", "add_filter_arguments",
           "add_source_arguments", "config_from_env", "query_from_args", "run", "source_for"]

DEFAULT_LIMIT = 50
#: Loki has no "all time": without --since, this much history is searched (and the footer says so).
DEFAULT_LOKI_LOOKBACK = "24h"
#: Sorting by something other than time, aggregating or drawing a tree needs every match, not just the
#: newest: over Loki at most this many entries are read (a warning says when the cap was hit).
DEFAULT_SCAN_LIMIT = 100_000

SORT_KEYS = (f"sort keys: {', '.join(SORT_ALIASES)}, or any record field (e.g. input_tokens, error.status_code); "
             "a leading '-' sorts descending")

_EXAMPLES = """\
examples:
  llmmetrics traces --status error --model gpt-4o-mini --since 6h --sort -latency
  llmmetrics traces --trace-id 4bf92f3577b34da6a3ce929d0e0e4736          # one agent run as a tree
  llmmetrics traces --user u-42 --since 1d --sum cost_usd --by feature_flags.new_prompt
  llmmetrics traces --min-latency 3s --max-cost 0.10 --limit 20 --format json
  llmmetrics traces --status error --since 1h --print-logql              # LogQL to paste into Grafana
"""


def add_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``traces`` on the ``llmmetrics`` command's subparsers."""
    parser = subparsers.add_parser(
        "traces",
        help="query trace records (local JSONL files or Loki)",
        description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1],
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_filter_arguments(parser)

    output = parser.add_argument_group("output")
    output.add_argument("--sort", metavar="[-]FIELD", help="latency, cost, tokens, time, ttft or a dotted field; "
                        "'-' for descending (default -time: newest first)")
    output.add_argument("--limit", type=int, metavar="N", help=f"records to show (default {DEFAULT_LIMIT})")
    output.add_argument("--sum", metavar="FIELD", help="sum this field (cost_usd, latency_ms, tokens, …) per group")
    output.add_argument("--by", metavar="FIELD", help="group by this dotted field, e.g. feature_flags.new_prompt")
    output.add_argument("--format", choices=("table", "json"), default="table")

    source = add_source_arguments(parser)
    source.add_argument("--print-logql", action="store_true", help="print the LogQL for these filters and exit")
    parser.set_defaults(func=run)
    # `--sort -latency` (as the issue and the docs write it): argparse would take "-latency" for an unknown
    # option. It already lets values that look like negative numbers through; widen that test to "-name".
    # Set after every option is added, so -h still resolves as the help option (exact matches win).
    parser._negative_number_matcher = re.compile(r"^-\d+$|^-\d*\.\d+$|^-[A-Za-z_][A-Za-z0-9_.]*$")
    return parser


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    """The filter options (``--since``, ``--model``, ``--service``, …), shared with ``llmmetrics report``."""
    filters = parser.add_argument_group("filters")
    filters.add_argument("--status", choices=("success", "error", "ok"), help="call outcome (ok = success)")
    filters.add_argument("--model", help="requested model, e.g. gpt-4o-mini")
    filters.add_argument("--provider", help="provider, e.g. openai")
    filters.add_argument("--operation", choices=("chat", "responses", "embeddings"))
    filters.add_argument("--error-type", metavar="TYPE", help="exception class, e.g. RateLimitError")
    filters.add_argument("--user", metavar="USER_ID", help="bound user_id")
    filters.add_argument("--request-id", metavar="ID", help="bound request_id")
    filters.add_argument("--trace-id", metavar="ID", help="alone: draw this agent run as a tree")
    filters.add_argument("--call-id", metavar="ID")
    filters.add_argument("--service", help="service name (Loki: defaults to LLMMETRICS_SERVICE / llm-app)")
    filters.add_argument("--env", help="environment, e.g. prod")
    filters.add_argument("--min-latency", metavar="DURATION", help="e.g. 3s, 250ms; a plain number is ms")
    filters.add_argument("--max-latency", metavar="DURATION")
    filters.add_argument("--min-cost", metavar="USD", help="e.g. 0.01 or $0.01")
    filters.add_argument("--max-cost", metavar="USD")
    filters.add_argument("--since", metavar="WHEN", help="a duration ago (30m, 6h, 1d) or an ISO time")
    filters.add_argument("--from", dest="from_time", metavar="ISO", help="start time, ISO-8601 (UTC if no offset)")
    filters.add_argument("--until", metavar="WHEN", help="end time: a duration ago or an ISO time (exclusive)")
    filters.add_argument("--grep", metavar="TEXT", help="free text anywhere in the raw record line (LogQL |=)")
    filters.add_argument("--kind", choices=("call", "run", "all"), help="record kind (default call; all for a tree)")


def add_source_arguments(parser: argparse.ArgumentParser) -> Any:
    """Where the records come from (``--file``, ``--loki-url``, …); returns the group for more options."""
    source = parser.add_argument_group("source")
    source.add_argument("--file", metavar="PATH", help="local trace file (default LLMMETRICS_TRACE_FILE / "
                        "llmmetrics-traces.jsonl); forces the local backend")
    source.add_argument("--loki-url", metavar="URL", help="query Loki instead (default LLMMETRICS_LOKI_URL)")
    source.add_argument("--loki-tenant", metavar="TENANT", help="X-Scope-OrgID (default LLMMETRICS_LOKI_TENANT)")
    source.add_argument("--loki-ca-file", metavar="PEM", help="CA bundle to verify Loki's TLS certificate "
                        "(default LLMMETRICS_LOKI_CA_FILE, else REQUESTS_CA_BUNDLE, else the system's roots)")
    source.add_argument("--scan-limit", type=int, default=DEFAULT_SCAN_LIMIT, metavar="N",
                        help="Loki: most entries read when sorting by a non-time field, aggregating or drawing a tree")
    return source


def run(args: argparse.Namespace) -> int:
    """Answer the query; exit code 0 on success, 2 for a bad option or configuration, 1 when the source fails."""
    out, err = sys.stdout, sys.stderr
    try:
        config = config_from_env()
        query = query_from_args(args)
        order = SortOrder.parse(args.sort) if args.sort else SortOrder()
        if args.limit is not None and args.limit < 1:
            raise QueryError("--limit must be at least 1")
        if args.scan_limit < 1:
            raise QueryError("--scan-limit must be at least 1")
    except (ConfigError, QueryError) as error:
        err.write(f"llmmetrics traces: {error}\n")
        return 2
    tree = bool(args.trace_id) and not (args.sum or args.by or args.sort or args.format == "json" or args.kind)
    if tree:
        query = dataclasses.replace(query, kind="all")
    aggregating = bool(args.sum or args.by)
    service = args.service or config.service
    if args.print_logql:
        logql = build_logql(query, service=service, env=args.env, structured_metadata=config.loki_structured_metadata)
        out.write(logql + "\n")
        return 0

    source = source_for(args, config, query, service)
    if source is None:
        err.write("llmmetrics traces: no trace file configured: pass --file PATH or --loki-url URL\n")
        return 2
    # A query parses up to millions of short-lived records and creates no reference cycles: the cyclic
    # collector's passes over them are pure overhead (~15% of a full scan), so it rests meanwhile.
    collecting = gc.isenabled()
    gc.disable()
    try:
        if tree:
            render_tree(args.trace_id, [m.record for m in source.matches(None)], out)
        elif aggregating:
            matches = source.matches(args.limit)
            groups = aggregate((m.record for m in matches), args.sum, args.by)
            (render_groups_json if args.format == "json" else render_groups_table)(groups, args.sum, args.by, out)
        else:
            shown = source.first(order, args.limit or DEFAULT_LIMIT)
            if args.format == "json":
                render_json_lines((m.line for m in shown), out)
            else:
                render_table([m.record for m in shown], out)
            # records without the field rank last, so if the first ones lack it, every scanned record does
            if shown and args.sort and all(order.value(m.record) is None for m in shown):
                out.flush()
                err.write(f"llmmetrics traces: no record has the field {order.field!r} to sort by, so the "
                          f"records are in the order they were read; {SORT_KEYS}\n")
    except (NoTraceFiles, LokiError) as error:
        err.write(f"llmmetrics traces: {error}\n")
        return 1
    except BrokenPipeError:  # `| head` closed the pipe: the reader has what it wanted
        return 0
    except OSError as error:  # e.g. a trace file without read permission
        err.write(f"llmmetrics traces: cannot read the trace files: {error}\n")
        return 1
    finally:
        if collecting:
            gc.enable()
    out.flush()  # the answer first, then the footer, also when both streams go to one terminal or file
    err.write(source.footer() + "\n")
    return 0


#: The settings this command reads; a bad value of any other LLMMETRICS_* variable is not its business.
_READS = frozenset({"service", "trace_file", "loki_url", "loki_tenant", "loki_username", "loki_password",
                    "loki_bearer_token", "loki_ca_file", "loki_timeout_seconds", "loki_structured_metadata"})


def config_from_env() -> Config:
    """The environment's configuration; bad values of settings this command (and ``report``) reads raise
    ``ConfigError``."""
    config, problems = from_env_or_defaults()
    fatal = [p for p in problems if p.field in _READS]
    if fatal:
        raise ConfigError(fatal)
    return config


def source_for(args: argparse.Namespace, config: Config, query: Query, service: str) -> Source | None:
    """Loki when ``--loki-url`` is given (or configured, unless ``--file`` is), else the local files; None
    when neither is configured."""
    loki_url = args.loki_url or (None if args.file else config.loki_url)
    if loki_url:
        return LokiSource(args, config, query, loki_url, service)
    if args.file or config.trace_file:
        return LocalSource(args.file or config.trace_file, query)
    return None


class Source:
    """Where matches come from; ``footer`` says afterwards what was read (and what was skipped or capped)."""

    def matches(self, limit: int | None) -> Iterable[Match]:
        """Every match, or the first ``limit``, for a tree or an aggregate (None: all the source allows)."""
        raise NotImplementedError

    def first(self, order: SortOrder, limit: int) -> list[Match]:
        """The ``limit`` first matches in ``order``."""
        raise NotImplementedError

    def footer(self) -> str:
        raise NotImplementedError


class LocalSource(Source):
    def __init__(self, path: str, query: Query) -> None:
        self.scan = LocalScan(path, query)
        self.started = time.perf_counter()

    def matches(self, limit: int | None) -> Iterable[Match]:
        return self.scan if limit is None else itertools.islice(self.scan, limit)

    def first(self, order: SortOrder, limit: int) -> list[Match]:
        return self.scan.top(order, limit)

    def footer(self) -> str:
        scan = self.scan
        footer = f"scanned {_size(scan.bytes_read)} in {len(scan.files)} file(s) in {time.perf_counter() - self.started:.2f} s"
        if scan.malformed:
            footer += f"; skipped {scan.malformed:,} malformed line(s), e.g. {scan.malformed_examples[0]}"
        return footer


class LokiSource(Source):
    def __init__(self, args: argparse.Namespace, config: Config, query: Query, url: str, service: str) -> None:
        self.note = ""
        if query.start_ns is None:
            query = dataclasses.replace(query, start_ns=parse_time_ns(DEFAULT_LOKI_LOOKBACK))
            self.note = f" (searched the last {DEFAULT_LOKI_LOOKBACK}; use --since for more)"
        self.query = query
        self.logql = build_logql(query, service=service, env=args.env,
                                 structured_metadata=config.loki_structured_metadata)
        self.client = LokiClient.from_config(config, url=url, tenant=args.loki_tenant, ca_file=args.loki_ca_file)
        self.read = 0
        self.capped_at: int | None = None
        self.scan_limit = args.scan_limit

    def matches(self, limit: int | None, direction: str = "backward") -> Iterator[Match]:
        """Entries as records, re-checked with the local predicate so each filter has one meaning."""
        limit = self.scan_limit if limit is None else limit
        compiled = self.query.compile()
        end_ns = self.query.end_ns if self.query.end_ns is not None else time.time_ns() + 1
        assert self.query.start_ns is not None
        for entry in self.client.entries(
            self.logql, start_ns=self.query.start_ns, end_ns=end_ns, limit=limit, direction=direction
        ):
            self.read += 1
            line = entry.line.encode()
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # `| __error__=""` already keeps non-JSON lines out of the answer
            if isinstance(record, dict) and compiled.line_may_match(line) and compiled.predicate(record):
                yield Match(record, line)
        if self.read >= limit and limit == self.scan_limit:
            self.capped_at = limit

    def first(self, order: SortOrder, limit: int) -> list[Match]:
        if order.is_time:  # Loki answers in time order: the first `limit` entries are the answer
            return list(self.matches(limit, "backward" if order.descending else "forward"))
        # any other order needs every match in the range (up to --scan-limit), then the best `limit`; read
        # oldest first, as the local scan does, so that ties are kept in the same order on both backends
        return order.first(self.matches(self.scan_limit, "forward"), limit, record=lambda m: m.record)

    def footer(self) -> str:
        client = self.client
        footer = f"read {self.read:,} entries from Loki in {client.pages} page(s){self.note}"
        if client.bytes_processed:
            footer += f", Loki processed {_size(client.bytes_processed)}"
        if self.capped_at:
            footer += f"; stopped at --scan-limit {self.capped_at:,}: totals and order cover only those entries"
        client.close()  # the footer is the last use
        return footer


def query_from_args(args: argparse.Namespace) -> Query:
    """Turn command-line options into a :class:`Query`; raises :class:`QueryError` naming the bad option."""
    if args.since and args.from_time:
        raise QueryError("give either --since or --from, not both")
    start = args.since or args.from_time
    return Query(
        kind=args.kind or "call",
        status="success" if args.status == "ok" else args.status,
        model=args.model,
        provider=args.provider,
        operation=args.operation,
        error_type=args.error_type,
        user_id=args.user,
        request_id=args.request_id,
        trace_id=args.trace_id,
        call_id=args.call_id,
        service=args.service,
        env=args.env,
        min_latency_ms=_opt(parse_latency_ms, args.min_latency, "--min-latency"),
        max_latency_ms=_opt(parse_latency_ms, args.max_latency, "--max-latency"),
        min_cost_usd=_opt(parse_cost, args.min_cost, "--min-cost"),
        max_cost_usd=_opt(parse_cost, args.max_cost, "--max-cost"),
        start_ns=_opt(parse_time_ns, start, "--since/--from"),
        end_ns=_opt(parse_time_ns, args.until, "--until"),
        text=args.grep or None,
    )


def _size(count: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if count >= scale:
            return f"{count / scale:,.1f} {unit}"
    return f"{count} bytes"


def _opt(parse: Any, value: str | None, option: str) -> Any:
    if value is None:
        return None
    try:
        return parse(value)
    except QueryError as error:
        raise QueryError(f"{option}: {error}") from None
