"""One traced LLM call, whatever SDK made it: what was asked, when, how it ended, and its trace record.

The call path does as little as it can: ``Call(...)`` notes the request and moves the in-flight gauge up,
``_finish`` notes the latency or error, moves it down and hands the call to the exporter (one deque
append). Everything else — reading the response through the call's SDK adapter, counting tokens and cost,
making the ids, building the record — runs on the exporter thread (:meth:`Call.complete`,
:meth:`Call.record`). What is read from a response, and how, is the SDK adapter's
(``llmmetrics.providers``); this module never looks inside one.

A call joins the W3C trace around it (:mod:`llmmetrics.tracecontext`): the recording OpenTelemetry span
(taken on the call path as an object, its ids read by the exporter), else its ``trace_run``, else a bound
``traceparent``; that trace's id is its ``trace_id`` and its exemplars', the parent's span its
``parent_span_id``.
"""

from __future__ import annotations

import logging
import sys
from random import getrandbits
import time
from typing import TYPE_CHECKING, Any

from prometheus_client.samples import Exemplar

from .context import _bound, _run
from .record import timestamp
from .tracecontext import OTEL_TRACE, TRACEPARENT, current_span, parse_traceparent, span_parent

if TYPE_CHECKING:
    from .providers import Adapter, Target
    from .runtime import Runtime

__all__ = ["Call", "PENDING", "count_internal_error", "error_of", "NO_TOKENS"]

log = logging.getLogger("llmmetrics")

_SECRET_HEADERS = frozenset({"authorization", "api-key", "x-api-key", "openai-api-key", "proxy-authorization",
                             "cookie", "x-goog-api-key", "ocp-apim-subscription-key"})
_PROVIDER_ATTR = "_llmmetrics_provider"
_modules = sys.modules
#: A call's token counts, in the order adapters' ``read_usage`` gives them: input (all of it, cache reads and
#: writes included), output (reasoning included), cache reads, reasoning, cache writes, the 1-hour share of those.
NO_TOKENS: tuple[None, ...] = (None,) * 6


def error_of(exc: BaseException) -> dict[str, Any]:
    """The record's ``error``: the class the caller saw, its message (bounded) and HTTP status if any."""
    return {"type": type(exc).__name__, "message": str(exc)[:2000], "status_code": getattr(exc, "status_code", None)}


class _Pending:
    __slots__ = ()

    def __repr__(self) -> str:
        return "PENDING"


#: ``Call.first_token`` while the item that carries the first token is on its way to the user: the stream
#: wrapper stamps the time when it gets there (:mod:`llmmetrics.streams`).
PENDING: Any = _Pending()


def count_internal_error(rt: Runtime, stage: str, what: str) -> None:
    """A failure in llmmetrics' own code: counted and logged at debug, never raised into the user's call."""
    try:
        rt.self_metrics.instrumentation_errors.labels(stage).inc()
        log.debug("llmmetrics: %s failed", what, exc_info=sys.exc_info()[0] is not None)
    except Exception:  # even counting failed: nothing left to tell, and the user's call must go on
        pass


class Call:
    """One traced call in flight: what was asked, when, under which run and context."""

    __slots__ = ("rt", "sdk", "target", "operation", "provider", "model", "model_label", "series", "kwargs",
                 "content", "stream", "ts_ns", "t0", "ctx", "run", "otel_span", "_ids", "first_token", "chunks",
                 "chunk_count", "kept", "usage", "response_model", "finish_reason", "tool_calls",
                 "provider_request_id", "finished", "output", "stream_error", "response", "http_response", "latency",
                 "ttft", "per_chunk", "error", "tokens", "cost", "completed")

    def __init__(self, rt: Runtime, sdk: Adapter, target: Target, resource: Any, kwargs: dict[str, Any]) -> None:
        self.rt = rt
        self.sdk = sdk
        self.target = target
        self.operation = operation = target.operation
        # the label is derived once per resource object (a client's resources live as long as the client)
        provider = getattr(resource, _PROVIDER_ATTR, None)
        if provider is None:
            provider = rt.config.provider or sdk.provider_label(sdk.client_of(resource))
            try:
                setattr(resource, _PROVIDER_ATTR, provider)
            except Exception:  # a resource that refuses attributes just pays the lookup each call
                pass
        self.provider = provider
        self.model = model = kwargs.get("model")
        self.series = series = rt.metrics.series_for(provider, model, operation)
        self.model_label = series.model_label
        self.kwargs = kwargs
        self.content = content = kwargs.get(target.content_arg)
        self.stream = kwargs.get("stream") is True
        if type(content) is list:
            self.content = list(content)  # the record is built later; the user may append meanwhile
        self.ctx = _bound.get()
        self.run = _run.get()
        # an application that never imported OpenTelemetry has no span: one dictionary lookup, no call
        self.otel_span = current_span() if OTEL_TRACE in _modules else None
        self._ids: tuple[str, str, str, str | None] | None = None
        # A stream's state, kept as cheaply as it comes (the exporter derives the rest when the call completes):
        self.first_token: float | None = None
        self.chunks: list[str] | None = None  # text pieces
        self.chunk_count = 0  # stream items carrying output, counted by the adapter
        self.kept: list[Any] | None = None  # items the adapter reads whole on the exporter thread
        self.usage: Any = None
        self.response_model: str | None = None
        self.finish_reason: str | None = None
        self.tool_calls: list[dict[str, Any]] | None = None
        self.provider_request_id: str | None = None
        self.output: str | None = None
        self.response: Any = None
        self.http_response: Any = None
        self.stream_error: BaseException | None = None
        self.error: dict[str, Any] | None = None
        self.ttft: float | None = None
        self.tokens: tuple[int | None, ...] | None = None
        self.cost: float | None = None
        self.finished = False
        self.completed = False
        series.start()
        self.ts_ns = time.time_ns()
        self.t0 = time.perf_counter()

    # -- outcomes (call path) -------------------------------------------------------------------------------

    def succeed(self) -> None:
        self._finish(time.perf_counter(), None)

    def fail(self, exc: BaseException) -> None:
        self._finish(time.perf_counter(), exc)

    def _finish(self, t1: float, exc: BaseException | None) -> None:
        """The call-path end of a call: its latency and error noted, in-flight down, the call to the exporter.

        Never raises: it runs in the user's call, also while their own exception is on its way up.
        """
        if self.finished:
            return
        self.finished = True
        try:
            self.latency = t1 - self.t0
            first = self.first_token
            if first is not None and first is not PENDING:  # pending: the first token never reached the user
                self.ttft = first - self.t0
            if exc is not None:
                self.error = error_of(exc)
                if self.provider_request_id is None:
                    self.provider_request_id = getattr(exc, "request_id", None)
            self.series.end()
            if self.run is not None:
                self.run.steps.append(self)
            self.rt.submit(self)
        except Exception:
            count_internal_error(self.rt, "call", "finishing a call")

    def abandon(self) -> None:
        """Tracing gave up before the request went out: in-flight down, nothing recorded."""
        if not self.finished:
            self.finished = True
            try:
                self.series.end()
            except Exception:
                count_internal_error(self.rt, "call", "abandoning a call")

    # -- the exporter's part --------------------------------------------------------------------------------

    def complete(self) -> None:
        """The exporter's part of a finished call: read the response, then count the call in the metrics.

        Off the call path, so every series but in-flight trails the call by about one exporter interval
        (0.1 s); a call the exporter queue cannot take is completed on the spot, so none goes uncounted.
        """
        if self.completed:
            return
        self.completed = True
        if self.response is not None or self.http_response is not None or self.kept is not None:
            try:
                self.sdk.read_response(self)
            except Exception:
                count_internal_error(self.rt, "record", "reading the response content")
            self.response = self.http_response = self.kept = None
        latency, ttft, chunks = self.latency, self.ttft, self.chunk_count
        # the mean gap between chunks after the first (set here, off the call path, like everything below)
        self.per_chunk = (latency - ttft) / (chunks - 1) if ttft is not None and chunks > 1 else None
        at = self.ts_ns * 1e-9 + latency  # exemplar timestamp: the call's end, without another clock read
        ids = {"trace_id": self.trace_id, "span_id": self.span_id}
        if self.error is not None:
            self.series.failed(latency, Exemplar(ids, latency, at), ttft, self.per_chunk, self.error["type"])
            return
        usage = self.usage
        cost = cost_exemplar = None
        if usage is not None:
            try:
                self.tokens = tokens = self.sdk.read_usage(self.operation, usage)
            except Exception:
                count_internal_error(self.rt, "record", "reading the usage")
            else:
                price = self.rt.prices.lookup(self.model, self.response_model)
                if price is not None:
                    self.cost = cost = price.cost(tokens[0] or 0, tokens[1] or 0, tokens[2] or 0, tokens[4] or 0,
                                                  tokens[5] or 0)
                    cost_exemplar = Exemplar(ids, cost, at)
        self.series.succeeded(latency, Exemplar(ids, latency, at), ttft, self.per_chunk, self.tokens, cost,
                              cost_exemplar)

    def step(self) -> dict[str, Any]:
        """This call as a step of its run record."""
        self.complete()  # normally done already: the call reached the exporter before its run's end
        error = self.error
        input_tokens, output_tokens, cached, reasoning, cache_write, _ = self.tokens or NO_TOKENS
        return {
            "call_id": self.call_id, "span_id": self.span_id, "operation": self.operation, "model": self.model,
            "status": "error" if error else "success", "latency_ms": self.latency * 1000.0,
            "input_tokens": input_tokens, "output_tokens": output_tokens, "cached_input_tokens": cached,
            "reasoning_tokens": reasoning, "cache_write_tokens": cache_write, "cost_usd": self.cost,
            "error_type": error["type"] if error else None, "error_message": error["message"] if error else None,
        }

    # Ids are made on first use, off the call path: by the exporter, for the exemplars, the record and the
    # run's steps. A call shares the trace id of its parent: an OpenTelemetry span recording inside its run
    # (or with no run), its run, or a bound traceparent, in that order.

    @property
    def trace_id(self) -> str:
        return (self._ids or self._new_ids())[0]

    @property
    def span_id(self) -> str:
        return (self._ids or self._new_ids())[1]

    @property
    def call_id(self) -> str:
        return (self._ids or self._new_ids())[2]

    @property
    def parent_span_id(self) -> str | None:
        return (self._ids or self._new_ids())[3]

    def _new_ids(self) -> tuple[str, str, str, str | None]:
        run, span = self.run, self.otel_span
        parent: tuple[str, str] | None = None
        if span is not None and (run is None or span is not run.otel_span):
            parent = span_parent(span)
        elif run is not None:
            parent = run.trace_id, run.span_id
        elif TRACEPARENT in self.ctx:
            parent = parse_traceparent(self.ctx[TRACEPARENT])
        if parent is None:
            raw = f"{getrandbits(320):080x}"
            ids: tuple[str, str, str, str | None] = raw[:32], raw[32:48], raw[48:], None
        else:
            raw = f"{getrandbits(192):048x}"
            ids = parent[0], raw[:16], raw[16:], parent[1]
        self._ids = ids
        return ids

    def record(self) -> dict[str, Any]:
        """The trace record of this finished call (built by the exporter thread, not on the call path)."""
        self.complete()
        error, ttft, per_chunk = self.error, self.ttft, self.per_chunk
        input_tokens, output_tokens, cached, reasoning, cache_write, _ = self.tokens or NO_TOKENS
        run = self.run
        rt = self.rt
        output = self.output
        if output is None and self.chunks:
            output = "".join(self.chunks)
        total = None if input_tokens is None else input_tokens + (output_tokens or 0)
        parent_span_id = self.parent_span_id
        return {
            "kind": "call",
            "call_id": self.call_id,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": parent_span_id,
            "parent_trace_id": self.trace_id if parent_span_id is not None else None,
            "run_name": run.name if run is not None else None,
            "timestamp": timestamp(self.ts_ns),
            "ts_ns": self.ts_ns,
            "service": rt.config.service,
            "env": rt.config.env,
            "provider": self.provider,
            "operation": self.operation,
            "model": self.model,
            "response_model": self.response_model,
            "stream": self.stream,
            "status": "error" if error else "success",
            "latency_ms": self.latency * 1000.0,
            "ttft_ms": None if ttft is None else ttft * 1000.0,
            "time_per_chunk_ms": None if per_chunk is None else per_chunk * 1000.0,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cached_input_tokens": cached,
            "reasoning_tokens": reasoning,
            "cache_write_tokens": cache_write,
            "total_tokens": total,
            "cost_usd": self.cost,
            "error": error,
            "messages": self.content,
            "kwargs": self._safe_kwargs(),
            "output": output,
            "finish_reason": self.finish_reason,
            "tool_calls": self.tool_calls,
            "provider_request_id": self.provider_request_id,
            "user_id": None,
            "request_id": None,
            "feature_flags": {},
            "context": {},
            "sampled": None,
            "truncated": False,
            "_context": self.ctx,
        }

    def _safe_kwargs(self) -> dict[str, Any]:
        """Request arguments worth recording: no content (recorded apart), no unset sentinels, no secrets."""
        skip, unset = self.target.not_kwargs, self.sdk.UNSET
        out = {k: v for k, v in self.kwargs.items() if k not in skip and not isinstance(v, unset)}
        headers = out.get("extra_headers")
        if headers:
            out["extra_headers"] = {k: ("[REDACTED]" if str(k).lower() in _SECRET_HEADERS else v)
                                    for k, v in headers.items() if not str(k).lower().startswith("x-stainless")}
        return out
