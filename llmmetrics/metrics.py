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
from collections.abc import Callable
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.samples import Exemplar

__all__ = ["LLMMetrics", "SelfMetrics", "CallSeries", "FastHistogram", "duration_buckets", "TOKEN_BUCKETS", "OTHER_MODEL"]

OTHER_MODEL = "other"
#: Tokens per call: powers of 4 from 1 to 4**12 (16.7M tokens).
TOKEN_BUCKETS: tuple[float, ...] = tuple(float(4**i) for i in range(13))
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
        self.records_dropped = Counter(
            "llmmetrics_records_dropped", "Trace records lost, by sink and reason.", ["sink", "reason"], **kw)
        self.export_queue_depth = Gauge(
            "llmmetrics_export_queue_depth", "Records waiting in a sink's queue.", ["sink"], multiprocess_mode="livesum", **kw)
        self.export_queue_bytes = Gauge(
            "llmmetrics_export_queue_bytes", "Bytes waiting in a sink's queue.", ["sink"], multiprocess_mode="livesum", **kw)
        self.export_errors = Counter(
            "llmmetrics_export_errors", "Failed export attempts, by sink and reason.", ["sink", "reason"], **kw)
        self.model_overflow = Counter(
            "llmmetrics_model_overflow", "Calls whose model label was folded into 'other' by the cardinality cap.", **kw)
        self.instrumentation_errors = Counter(
            "llmmetrics_instrumentation_errors",
            "Internal failures swallowed so that the user's call is unaffected.", ["stage"], **kw)
        self.loki_pushes = Counter("llmmetrics_loki_pushes", "Loki push attempts by outcome.", ["outcome"], **kw)
        self.loki_push_duration = Histogram(
            "llmmetrics_loki_push_duration_seconds", "Loki push request latency.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), **kw)
        self.loki_retries = Counter("llmmetrics_loki_retries", "Loki pushes retried after 429, 5xx or a connection error.", **kw)
        self.loki_spool_bytes = Gauge(
            "llmmetrics_loki_spool_bytes", "Bytes in the on-disk spool awaiting Loki.", multiprocess_mode="livesum", **kw)
        self.loki_spool_records = Gauge(
            "llmmetrics_loki_spool_records", "Records in the on-disk spool awaiting Loki.", multiprocess_mode="livesum", **kw)
        for stage in ("record", "stream", "pipeline", "sink"):
            self.instrumentation_errors.labels(stage)


def _adder(child: Any) -> Callable[[float], None]:
    """The cheapest way to add to a counter/gauge child: its value's ``inc``, skipping per-call re-validation
    (the child was validated when created). Falls back to the public method if the internals differ."""
    value = getattr(child, "_value", None)
    return value.inc if hasattr(value, "inc") else child.inc


class FastHistogram:
    """``observe`` for one histogram child: a bisect instead of a linear scan, and no re-validation.

    Exemplar labels are built by llmmetrics itself (fixed-size hex ids), so they are known to fit (see
    ``_EXEMPLAR_RUNES``) and need no per-call validation.
    """

    __slots__ = ("_bounds", "_buckets", "_add_sum", "_child")

    def __init__(self, child: Any) -> None:
        buckets = getattr(child, "_buckets", None)
        bounds = getattr(child, "_upper_bounds", None)
        total = getattr(child, "_sum", None)
        self._child = child
        if buckets is None or bounds is None or not hasattr(total, "inc"):
            self._buckets = None
            return
        self._bounds = tuple(bounds)
        self._buckets = tuple(buckets)
        self._add_sum = total.inc

    def observe(self, value: float, exemplar: Exemplar | None = None) -> None:
        """Count ``value``; ``exemplar`` (already built, with its timestamp) is attached to its bucket."""
        if self._buckets is None:
            self._child.observe(value, exemplar.labels if exemplar is not None else None)
            return
        bucket = self._buckets[bisect_left(self._bounds, value)]
        bucket.inc(1)
        self._add_sum(value)
        if exemplar is not None:
            bucket.set_exemplar(exemplar)


class CallSeries:
    """The label children of one (provider, model, operation): what a call touches, looked up once."""

    __slots__ = ("requests_ok", "requests_error", "duration_ok", "duration_error", "ttft", "tokens", "token_hist",
                 "cost", "cost_exemplar", "in_flight", "unpriced", "_errors", "_metrics", "_labels")

    def __init__(self, metrics: LLMMetrics, provider: str, model: str, operation: str) -> None:
        labels = (provider, model, operation)
        self._metrics = metrics
        self._labels = labels
        self.requests_ok = _adder(metrics.requests.labels(*labels, "ok"))
        self.requests_error = _adder(metrics.requests.labels(*labels, "error"))
        self.duration_ok = FastHistogram(metrics.duration.labels(*labels, "ok"))
        self.duration_error = FastHistogram(metrics.duration.labels(*labels, "error"))
        self.ttft = FastHistogram(metrics.ttft.labels(*labels))
        # token_type order: input, output, cached_input, reasoning
        self.tokens = tuple(_adder(metrics.tokens.labels(*labels, t)) for t in metrics.TOKEN_TYPES)
        self.token_hist = tuple(FastHistogram(metrics.request_tokens.labels(*labels, t)) for t in metrics.TOKEN_TYPES)
        cost = metrics.cost.labels(*labels)
        self.cost = _adder(cost)
        self.cost_exemplar = getattr(getattr(cost, "_value", None), "set_exemplar", None)
        self.in_flight = _adder(metrics.in_flight.labels(provider, model))
        self.unpriced = _adder(metrics.unpriced.labels(provider, model))
        self._errors: dict[str, Callable[[float], None]] = {}

    def error(self, error_type: str) -> Callable[[float], None]:
        add = self._errors.get(error_type)
        if add is None:
            add = self._errors[error_type] = _adder(self._metrics.errors.labels(*self._labels, error_type))
        return add


class LLMMetrics:
    """The ``llm_*`` metric families and a cache of per-series children."""

    TOKEN_TYPES = ("input", "output", "cached_input", "reasoning")

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
        self._self = self_metrics
        self._max_models = max_models
        self._model_labels: dict[str, str] = {}
        self._admitted: set[str] = set()
        self._series: dict[tuple[str, str, str], CallSeries] = {}
        self._lock = threading.Lock()

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
