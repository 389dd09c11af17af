"""Prometheus metrics for LLM calls, and llmmetrics' own health metrics.

Names and labels are fixed here because dashboards and alert rules depend on them. Everything that can be
decided once is decided once: label children are created and cached per (provider, model, operation), so a
call only does dictionary lookups and ``inc``/``observe``.

Label values stay low-cardinality: ``model`` is the requested model, normalised, and folded into ``other``
beyond ``max_models`` distinct values. Ids never become labels; they go into exemplars and trace records.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString
from prometheus_client.values import MutexValue

from .exemplars import ExemplarSlot, ExemplarTable, shared_table

__all__ = ["LLMMetrics", "SelfMetrics", "CallSeries", "duration_buckets", "TOKEN_BUCKETS", "CHUNK_BUCKETS", "OTHER_MODEL"]

OTHER_MODEL = "other"
#: Tokens per call: powers of 4 from 1 to 4**12 (16.7M tokens).
TOKEN_BUCKETS: tuple[float, ...] = tuple(float(4**i) for i in range(13))
#: Seconds per streamed chunk: the OpenTelemetry GenAI buckets for time per output token (10 ms to 2.5 s), with
#: 1, 2.5 and 5 ms below them for fast models and local servers.
CHUNK_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5,
                                    0.75, 1.0, 2.5)
_MAX_MODEL_LABEL_CHARS = 100
_MAX_EXEMPLAR_RUNES = 128  # OpenMetrics: the exemplar's label names and values together


def duration_buckets(*exact_bounds: float) -> tuple[float, ...]:
    """OpenTelemetry GenAI duration buckets (0.01 s doubling to 81.92 s) extended to 327.68 s.

    ``exact_bounds`` (the latency SLO, the slow-call threshold) are added so that alert rules can compute a
    ratio at exactly those bounds instead of interpolating.
    """
    bounds = {round(0.01 * 2**i, 2) for i in range(16)}
    bounds.update(float(b) for b in exact_bounds)
    return tuple(sorted(bounds))


#: Exemplars carry {trace_id: 32 hex, span_id: 16 hex}, ids llmmetrics makes itself, so their size is known
#: here, once: OpenMetrics allows 128 runes, and prometheus_client would count an observation *before*
#: rejecting an oversized exemplar.
_EXEMPLAR_RUNES = len("trace_id") + 32 + len("span_id") + 16
assert _EXEMPLAR_RUNES <= _MAX_EXEMPLAR_RUNES


class SelfMetrics:
    """llmmetrics' own health: records emitted, thinned, dropped; export queues and errors."""

    def __init__(self, registry: CollectorRegistry | None = REGISTRY) -> None:
        kw: dict[str, Any] = {"registry": registry}
        self.records_emitted = Counter("llmmetrics_records_emitted", "Trace records rendered and handed to sinks.", ["kind"], **kw)
        self.records_sampled_out = Counter(
            "llmmetrics_records_sampled_out", "Trace records sent in compact form (content removed by sampling).", **kw)
        self.records_truncated = Counter("llmmetrics_records_truncated", "Trace records cut to the size limit.", **kw)
        self.records_redacted = Counter(
            "llmmetrics_records_redacted", "Trace records in which personal data of a kind was replaced.", ["kind"], **kw)
        self.records_dropped = Counter(
            "llmmetrics_records_dropped", "Trace records lost, by sink and reason.", ["sink", "reason"], **kw)
        self.export_queue_depth = Gauge(
            "llmmetrics_export_queue_depth", "Records waiting in a sink's queue.", ["sink"], multiprocess_mode="livesum", **kw)
        self.export_queue_bytes = Gauge(
            "llmmetrics_export_queue_bytes", "Bytes waiting in a sink's queue.", ["sink"], multiprocess_mode="livesum", **kw)
        self.export_errors = Counter(
            "llmmetrics_export_errors", "Failed export attempts, by sink and reason.", ["sink", "reason"], **kw)
        self.detached_calls = Counter(
            "llmmetrics_detached_calls",
            "Calls that ended after their trace_run had ended: recorded as their own trace, not as a step.", **kw)
        self.model_overflow = Counter(
            "llmmetrics_model_overflow", "Calls whose model label was folded into 'other' by the cardinality cap.", **kw)
        self.instrumentation_errors = Counter(
            "llmmetrics_instrumentation_errors",
            "Internal failures swallowed so that the user's call is unaffected.", ["stage"], **kw)
        self.config_errors = Counter(
            "llmmetrics_config_errors",
            "Configuration mistakes logged instead of raised: bad LLMMETRICS_* values replaced by their defaults "
            "(no configure() call), unknown LLMMETRICS_* variables.", ["reason"], **kw)
        self.loki_pushes = Counter("llmmetrics_loki_pushes", "Loki push attempts by outcome.", ["outcome"], **kw)
        self.loki_push_duration = Histogram(
            "llmmetrics_loki_push_duration_seconds", "Loki push request latency.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), **kw)
        self.loki_retries = Counter("llmmetrics_loki_retries", "Loki pushes retried after 429, 5xx or a connection error.", **kw)
        self.loki_spool_bytes = Gauge(
            "llmmetrics_loki_spool_bytes", "Bytes in the on-disk spool awaiting Loki.", multiprocess_mode="livesum", **kw)
        self.loki_spool_records = Gauge(
            "llmmetrics_loki_spool_records", "Records in the on-disk spool awaiting Loki.", multiprocess_mode="livesum", **kw)
        self.traceparent_rejected = Counter(
            "llmmetrics_traceparent_rejected",
            "Incoming W3C traceparent values ignored by bind_context because they are malformed.", **kw)
        for stage in ("record", "stream", "pipeline", "sink"):
            self.instrumentation_errors.labels(stage)
        for reason in ("invalid_value", "unknown_variable"):
            self.config_errors.labels(reason)


class _PublicValue:
    """A value updated through prometheus_client's public methods (multiprocess mode, or an unknown value
    class): the same ``_value``/``_exemplar`` interface as an in-process ``MutexValue``.

    In multiprocess mode prometheus_client drops exemplars, so an exemplar-carrying value gets a slot in this
    worker's shared exemplar table (``llmmetrics.exemplars``) and its exemplar goes there instead."""

    __slots__ = ("_v", "_shared", "_missed")

    def __init__(self, value: Any, shared: ExemplarSlot | None = None, missed: Any = None) -> None:
        self._v = value
        self._shared = shared
        self._missed = missed

    @property
    def _value(self) -> float:
        return self._v.get()

    @_value.setter
    def _value(self, amount: float) -> None:
        self._v.set(amount)

    @property
    def _exemplar(self) -> Any:
        return None

    @_exemplar.setter
    def _exemplar(self, exemplar: Any) -> None:
        if self._shared is None:
            self._v.set_exemplar(exemplar)
        elif not self._shared.write(exemplar) and self._missed is not None:
            self._missed.inc()


def _raw(child: Any, exemplars: _SharedExemplars | None = None) -> Any:
    """The value object behind a counter/gauge child, to update under the series lock.

    In-process values (``MutexValue``) are updated in place: llmmetrics is their only writer and holds one
    lock for all the updates of a call, instead of one lock per update (a call touches about a dozen).
    Reading a float attribute is atomic, so scrapes stay correct. ``exemplars``: where this counter's
    exemplars go in multiprocess mode.
    """
    if exemplars is None:
        return _raw_value(child._value)
    return exemplars.value(child._value, child._name + "_total", _child_labels(child))


class _Histogram:
    """One histogram child's buckets and sum, for bisect-and-add under the series lock."""

    __slots__ = ("bounds", "buckets", "sum")

    def __init__(self, child: Any, exemplars: _SharedExemplars | None = None) -> None:
        self.bounds = tuple(child._upper_bounds)
        if exemplars is None:
            self.buckets = tuple(_raw_value(b) for b in child._buckets)
        else:
            labels = _child_labels(child)
            self.buckets = tuple(exemplars.value(b, child._name + "_bucket", {**labels, "le": floatToGoString(bound)})
                                 for b, bound in zip(child._buckets, self.bounds))
        self.sum = _raw_value(child._sum)

    def add(self, value: float, exemplar: Exemplar | None = None) -> None:
        """Count ``value`` (caller holds the series lock); ``exemplar`` goes on its bucket."""
        bucket = self.buckets[bisect_left(self.bounds, value)]
        bucket._value += 1
        self.sum._value += value
        if exemplar is not None:
            bucket._exemplar = exemplar


def _raw_value(value: Any) -> Any:
    return value if type(value) is MutexValue else _PublicValue(value)


def _child_labels(child: Any) -> dict[str, str]:
    return dict(zip(child._labelnames, child._labelvalues))


class _SharedExemplars:
    """Multiprocess mode: gives exemplar-carrying values a slot in this worker's shared exemplar table.

    The table is written by whoever counts the call, which is the exporter thread, under the series lock
    already held: the call path does not change. An exemplar that cannot be shared (the table is full, its
    directory unusable) is counted in ``llmmetrics_instrumentation_errors_total{stage="exemplar"}``.
    """

    __slots__ = ("table", "missed")

    def __init__(self, table: ExemplarTable, missed: Any) -> None:
        self.table = table
        self.missed = missed

    def value(self, value: Any, sample_name: str, labels: dict[str, str]) -> _PublicValue:
        return _PublicValue(value, self.table.slot(sample_name, labels), self.missed)


class CallSeries:
    """Everything one (provider, model, operation) records, behind one lock, looked up once.

    On the call path a call does ``start()`` and ``end()``: the in-flight gauge, live. The exporter thread
    then counts it with ``succeeded(...)`` or ``failed(...)``: requests, duration with its exemplar, time to
    first token and per chunk, tokens and cost, under the same one lock.
    """

    __slots__ = ("lock", "in_flight", "requests_ok", "requests_error", "duration_ok", "duration_error", "ttft",
                 "per_chunk", "tokens", "token_hist", "cost", "unpriced", "_errors", "_metrics", "_labels",
                 "model_label")

    def __init__(self, metrics: LLMMetrics, provider: str, model: str, operation: str) -> None:
        labels = (provider, model, operation)
        self.model_label = model
        self._metrics = metrics
        self._labels = labels
        self.lock = threading.Lock()
        self.in_flight = _raw(metrics.in_flight.labels(provider, model))
        self.requests_ok = _raw(metrics.requests.labels(*labels, "ok"))
        self.requests_error = _raw(metrics.requests.labels(*labels, "error"))
        shared = metrics.shared_exemplars
        self.duration_ok = _Histogram(metrics.duration.labels(*labels, "ok"), shared)
        self.duration_error = _Histogram(metrics.duration.labels(*labels, "error"), shared)
        self.ttft = _Histogram(metrics.ttft.labels(*labels))
        self.per_chunk = _Histogram(metrics.per_chunk.labels(*labels))
        # token_type order: input, output, cached_input, reasoning, cache_write (a call's token counts, in order)
        self.tokens = tuple(_raw(metrics.tokens.labels(*labels, t)) for t in metrics.TOKEN_TYPES)
        self.token_hist = tuple(_Histogram(metrics.request_tokens.labels(*labels, t)) for t in metrics.TOKEN_TYPES)
        self.cost = _raw(metrics.cost.labels(*labels), shared)
        self.unpriced = _raw(metrics.unpriced.labels(provider, model))
        self._errors: dict[str, Any] = {}

    def start(self) -> None:
        """A call began (call path)."""
        with self.lock:
            self.in_flight._value += 1

    def end(self) -> None:
        """A call ended (call path); what it was worth is counted by ``succeeded`` or ``failed``."""
        with self.lock:
            self.in_flight._value -= 1

    def succeeded(self, latency: float, exemplar: Exemplar, ttft: float | None, per_chunk: float | None,
                  tokens: tuple[int | None, ...] | None, cost: float | None, cost_exemplar: Exemplar | None) -> None:
        """Count a successful call (exporter thread). Zero cached/reasoning/cache-write counts are skipped (most
        calls have none); a call without a cost is counted as unpriced. ``tokens`` may carry more counts than
        there are token types (the 1-hour share of cache writes, for the price): those are not counted here."""
        with self.lock:
            self.requests_ok._value += 1
            self.duration_ok.add(latency, exemplar)
            if ttft is not None:
                self.ttft.add(ttft)
            if per_chunk is not None:
                self.per_chunk.add(per_chunk)
            if tokens is not None:
                for i, counter in enumerate(self.tokens):
                    n = tokens[i]
                    if n or (n is not None and i < 2):
                        counter._value += n
                        self.token_hist[i].add(n)
            if cost is None:
                self.unpriced._value += 1
            else:
                self.cost._value += cost
                self.cost._exemplar = cost_exemplar

    def failed(self, latency: float, exemplar: Exemplar, ttft: float | None, per_chunk: float | None,
               error_type: str) -> None:
        """Count a failed call (exporter thread); a stream that failed after its first chunks still tells its
        time to first token and per chunk."""
        errors = self._errors.get(error_type)
        if errors is None:
            errors = self._errors[error_type] = _raw(self._metrics.errors.labels(*self._labels, error_type))
        with self.lock:
            self.requests_error._value += 1
            self.duration_error.add(latency, exemplar)
            if ttft is not None:
                self.ttft.add(ttft)
            if per_chunk is not None:
                self.per_chunk.add(per_chunk)
            errors._value += 1


class LLMMetrics:
    """The ``llm_*`` metric families and a cache of per-series children."""

    TOKEN_TYPES = ("input", "output", "cached_input", "reasoning", "cache_write")

    def __init__(self, registry: CollectorRegistry | None = REGISTRY, *, latency_slo_seconds: float = 2.0,
                 slow_call_seconds: float = 3.0, max_models: int = 50, self_metrics: SelfMetrics | None = None) -> None:
        kw: dict[str, Any] = {"registry": registry}
        base = ["provider", "model", "operation"]
        buckets = duration_buckets(latency_slo_seconds, slow_call_seconds)
        self.requests = Counter("llm_requests", "LLM API calls by outcome.", base + ["status"], **kw)
        self.duration = Histogram("llm_request_duration_seconds", "LLM API call duration, to the last byte.",
                                  base + ["status"], buckets=buckets, **kw)
        self.ttft = Histogram("llm_time_to_first_token_seconds", "Time to the first streamed token.", base,
                              buckets=buckets, **kw)
        self.per_chunk = Histogram("llm_time_per_output_chunk_seconds",
                                   "Mean time between streamed output chunks after the first, once per stream.",
                                   base, buckets=CHUNK_BUCKETS, **kw)
        self.tokens = Counter("llm_tokens", "Tokens used, by token type.", base + ["token_type"], **kw)
        self.request_tokens = Histogram("llm_request_tokens", "Tokens per call, by token type.",
                                        base + ["token_type"], buckets=TOKEN_BUCKETS, **kw)
        self.cost = Counter("llm_cost_usd", "Spend in US dollars, from the price table.", base, **kw)
        self.errors = Counter("llm_errors", "Failed LLM API calls by exception class.", base + ["error_type"], **kw)
        self.in_flight = Gauge("llm_in_flight_requests", "LLM API calls in progress.", ["provider", "model"],
                               multiprocess_mode="livesum", **kw)
        self.unpriced = Counter("llm_unpriced_requests", "Calls whose model is not in the price table (cost unknown).",
                                ["provider", "model"], **kw)
        self.buckets = buckets
        table = shared_table()
        # the exemplar-carrying values (duration buckets, cost) of multiprocess mode, else None
        self.shared_exemplars = None if table is None else _SharedExemplars(
            table, self_metrics.instrumentation_errors.labels("exemplar") if self_metrics is not None else None)
        self._self = self_metrics
        self._max_models = max_models
        self._model_labels: dict[str, str] = {}
        self._admitted: set[str] = set()
        self._series: dict[tuple[str, str, str], CallSeries] = {}
        self._requested: dict[tuple[str, str, str], CallSeries] = {}
        self._lock = threading.Lock()

    def series_for(self, provider: str, model: Any, operation: str) -> CallSeries:
        """The series of a call as it was requested (raw model string): one dictionary lookup once seen."""
        key = (provider, model, operation)
        series = self._requested.get(key) if type(model) is str else None
        if series is None:
            series = self.series(provider, self.model_label(model), operation)  # counts an overflow itself
            # like the label cache, bounded: a typo loop must not grow it without bound
            if type(model) is str and len(self._requested) < 16 * self._max_models:
                self._requested[key] = series
        elif series.model_label == OTHER_MODEL and self._self is not None:
            self._self.model_overflow.inc()
        return series

    def model_label(self, model: Any) -> str:
        """The label value for a requested model: normalised, and ``other`` beyond the cardinality cap."""
        label = self._model_labels.get(model) if type(model) is str else None
        if label is not None:
            if label == OTHER_MODEL and self._self is not None:
                self._self.model_overflow.inc()
            return label
        with self._lock:
            normal = str(model).strip().lower()[:_MAX_MODEL_LABEL_CHARS] or "unknown"
            if normal in self._admitted or len(self._admitted) < self._max_models:
                self._admitted.add(normal)
                label = normal
            else:
                label = OTHER_MODEL
            # a typo loop must not grow the cache without bound: remember raw strings only up to a limit
            if type(model) is str and len(self._model_labels) < 4 * self._max_models:
                self._model_labels[model] = label
        if label == OTHER_MODEL and self._self is not None:
            self._self.model_overflow.inc()
        return label

    def series(self, provider: str, model_label: str, operation: str) -> CallSeries:
        key = (provider, model_label, operation)
        series = self._series.get(key)
        if series is None:
            with self._lock:
                series = self._series.get(key)
                if series is None:
                    series = self._series[key] = CallSeries(self, provider, model_label, operation)
        return series
