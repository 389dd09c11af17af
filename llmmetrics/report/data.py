"""Everything the report shows, gathered in one pass over the matching records, in bounded memory.

The records come from the same sources as ``llmmetrics traces`` (:mod:`llmmetrics.traces.cli`: the local
files through :class:`~llmmetrics.traces.local.LocalScan`, or Loki with each entry re-checked by the same
query predicate), and every total is made by the same code as the command's answer to the same question:

=============================================  ======================================================
in the report                                  the same question to ``llmmetrics traces``
=============================================  ======================================================
calls, spend and unpriced calls per model      ``--sum cost --by model``
… per user, per feature flag                   ``--sum cost --by user_id``, ``--by feature_flags.NAME``
tokens                                         ``--sum tokens``
failed calls by error type                     ``--status error --by error.type``
slowest calls                                  ``--sort -latency --limit N``
latest failed calls                            ``--status error --limit N``
an agent run's tree                            ``--trace-id ID``
=============================================  ======================================================

(with the report's own filters, e.g. ``--since 1d``). Sums are exact (:class:`~llmmetrics.traces.aggregate.
ExactSum`), so they do not depend on the order the backend returned the records in. Memory does not grow
with the number of records: per-bucket counts (:mod:`.buckets`), latency sketches (:mod:`.quantiles`), the
few records each table shows, and one group per model, user and flag value.

>>> data = ReportData()
>>> data.add({"kind": "call", "ts_ns": 10**18, "model": "gpt-4o-mini", "status": "success",
...           "latency_ms": 812.0, "cost_usd": 0.0002, "total_tokens": 120, "user_id": "u-42"})
>>> data.calls, data.spend.total
(1, 0.0002)
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from typing import Any

from ..traces.aggregate import NONE_KEY, Aggregation, Group
from ..traces.filters import SortOrder
from .buckets import TimeBuckets
from .quantiles import LatencySketch

__all__ = ["CALL_FIELDS", "MAX_FLAGS", "ReportData", "TopRecords"]

#: What a table row keeps of a call or run record (never prompts or answers: the page holds no content).
CALL_FIELDS = (
    "kind", "ts_ns", "timestamp", "status", "model", "operation", "run_name", "latency_ms", "input_tokens",
    "output_tokens", "total_tokens", "cost_usd", "user_id", "trace_id", "call_id", "error", "step_count",
    "failed_steps",
)
#: Feature flags given their own spend table; more are counted and named in the page, not tabled.
MAX_FLAGS = 8
#: Services counted by name (for the page's title)
MAX_SERVICES = 20


class TopRecords:
    """The ``limit`` best records in a :class:`SortOrder`, as ``traces --sort`` picks them (ties: first read)."""

    def __init__(self, order: SortOrder, limit: int) -> None:
        self.order = order
        self.limit = limit
        self._heap: list[tuple[tuple[bool, Any], int, dict[str, Any]]] = []
        self._seen = 0

    def offer(self, record: Mapping[str, Any]) -> None:
        if not self.limit:
            return
        self._seen += 1
        rank = self.order.rank(record)
        heap = self._heap
        if len(heap) < self.limit:
            heapq.heappush(heap, (rank, -self._seen, _trimmed(record)))
        elif (rank, -self._seen) > heap[0][:2]:
            heapq.heapreplace(heap, (rank, -self._seen, _trimmed(record)))

    def records(self) -> list[dict[str, Any]]:
        """Best first."""
        return [record for _, _, record in sorted(self._heap, key=lambda item: item[:2], reverse=True)]


def _trimmed(record: Mapping[str, Any]) -> dict[str, Any]:
    return {field: record.get(field) for field in CALL_FIELDS}


class ReportData:
    """Totals, time series, spend groups and the tables' records, fed one record at a time (``add``)."""

    def __init__(self, *, top: int = 10, runs: int = 3) -> None:
        self.series = TimeBuckets()
        self.calls = 0
        self.errors = 0
        self.sampled_out = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.latency = LatencySketch()
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self.runs = 0
        self.failed_runs = 0
        #: calls per service (the page's title); a handful of names in practice
        self.services: dict[str, int] = {}
        # the same aggregations `traces --sum … --by …` answers with (`--sum cost` alone: by_model's total)
        self._tokens = Aggregation("tokens", None)
        self.by_model = Aggregation("cost", "model")
        self.by_user = Aggregation("cost", "user_id")
        self.by_flag: dict[str, Aggregation] = {}
        self.flags_not_tabled: set[str] = set()
        self.error_types = Aggregation(None, "error.type")
        self.slowest = TopRecords(SortOrder("latency_ms", descending=True), top)
        self.failed = TopRecords(SortOrder("ts_ns", descending=True), top)
        # nested runs share their trace: a few more are held, so that `runs` distinct traces remain
        self._worst_runs = TopRecords(SortOrder("failed_steps", descending=True), 4 * runs)
        self._trees_wanted = runs
        #: tree text per trace id of ``worst_runs()``, filled in by the caller (it needs a query each)
        self.trees: dict[str, str] = {}

    def add(self, record: Mapping[str, Any]) -> None:
        kind = record.get("kind", "call")
        if kind == "call":
            self._add_call(record)
        elif kind == "run":
            self.runs += 1
            if record.get("status") == "error":
                self.failed_runs += 1
            failed_steps = record.get("failed_steps")
            if type(failed_steps) is int and failed_steps > 0:
                self._worst_runs.offer(record)

    def worst_runs(self) -> list[dict[str, Any]]:
        """The runs with the most failed steps, one per trace (a trace's tree shows its nested runs too)."""
        chosen: dict[Any, dict[str, Any]] = {}
        for run in self._worst_runs.records():
            if len(chosen) < self._trees_wanted:
                chosen.setdefault(run.get("trace_id"), run)
        return list(chosen.values())

    def add_all(self, records: Iterable[Mapping[str, Any]]) -> None:
        for record in records:
            self.add(record)

    def _add_call(self, record: Mapping[str, Any]) -> None:
        self.calls += 1
        failed = record.get("status") == "error"
        latency = record.get("latency_ms")
        if type(latency) is not float and type(latency) is not int:
            latency = None
        cost = record.get("cost_usd")
        if type(cost) is not float and type(cost) is not int:
            cost = None
        if failed:
            self.errors += 1
            self.error_types.add(record)
            self.failed.offer(record)
        service = record.get("service")
        if isinstance(service, str) and (service in self.services or len(self.services) < MAX_SERVICES):
            self.services[service] = self.services.get(service, 0) + 1
        if record.get("sampled") == "out":
            self.sampled_out += 1
        if latency is not None:
            self.latency.add(latency)
            self.slowest.offer(record)
        tokens_in, tokens_out = record.get("input_tokens"), record.get("output_tokens")
        if type(tokens_in) is int:
            self.input_tokens += tokens_in
        if type(tokens_out) is int:
            self.output_tokens += tokens_out
        ts_ns = record.get("ts_ns")
        if type(ts_ns) is int:
            if self.first_ns is None or ts_ns < self.first_ns:
                self.first_ns = ts_ns
            if self.last_ns is None or ts_ns > self.last_ns:
                self.last_ns = ts_ns
            model = record.get("model")
            self.series.stats(ts_ns, model if isinstance(model, str) and model else NONE_KEY).add_call(
                latency_ms=latency, failed=failed, cost=cost)
        flags = record.get("feature_flags")
        if isinstance(flags, dict):
            for name in flags:
                if name not in self.by_flag and name not in self.flags_not_tabled:
                    self._start_flag(name)
        for aggregation in self.by_flag.values():
            aggregation.add(record)
        self._tokens.add(record)
        self.by_model.add(record)
        self.by_user.add(record)

    def _start_flag(self, name: str) -> None:
        # a dotted name would read as a nested path (feature_flags.a.b), for `traces --by` too
        if len(self.by_flag) >= MAX_FLAGS or "." in name:
            self.flags_not_tabled.add(name)
            return
        # the calls read so far had no such flag: they are its "(none)" group, as `traces --by` counts them
        self.by_flag[name] = Aggregation("cost", f"feature_flags.{name}", earlier=self.spend)

    @property
    def spend(self) -> Group:
        """All calls' cost: ``total`` of the priced ones, ``missing_successes`` the unpriced ones (exact, so the
        sum over models is the sum over calls)."""
        return Group.combined("all", self.by_model.groups())

    @property
    def tokens(self) -> Group:
        groups = self._tokens.groups()
        return groups[0] if groups else Group("all")

    def quantile_ms(self, q: float) -> float | None:
        return self.latency.quantile(q)
