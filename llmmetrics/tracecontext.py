"""The W3C trace a call joins: the application's current OpenTelemetry span, or an incoming ``traceparent``.

A call, or a ``trace_run``, made while an OpenTelemetry span is recording takes that span's trace id as its
own ``trace_id`` and the span's id as its ``parent_span_id``, so its record and its exemplars point at a
trace Tempo (or Jaeger) has. Without an OpenTelemetry SDK, ``bind_context(traceparent=header)`` does the same
for the W3C trace context of an incoming request; a recording span wins over a bound header.

Nothing here imports OpenTelemetry: the call path looks for ``opentelemetry.trace`` (:data:`OTEL_TRACE`)
among the modules the application has imported, one dictionary lookup, and calls :func:`current_span` only
once it is there. On the call path
only the span object is taken (:func:`current_span`); its ids are read and formatted on the exporter thread
(:func:`span_parent`), since a span context never changes.

>>> parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
Parent(trace_id='4bf92f3577b34da6a3ce929d0e0e4736', span_id='00f067aa0ba902b7')
>>> parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01") is None
True
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["OTEL_TRACE", "Parent", "TRACEPARENT", "current_span", "parse_traceparent", "span_parent"]

#: The bound-context key ``bind_context(traceparent=...)`` keeps a valid incoming header under.
TRACEPARENT = "traceparent"
#: The module whose presence in ``sys.modules`` means the application uses OpenTelemetry.
OTEL_TRACE = "opentelemetry.trace"
# version-traceid-parentid-flags; a future version may append "-…" fields, version 00 may not
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_modules = sys.modules
_get_current_span: Callable[[], Any] | None = None


class Parent(NamedTuple):
    """A W3C parent: the trace to join and the span to hang under (32 and 16 lowercase hex characters)."""

    trace_id: str
    span_id: str


def parse_traceparent(value: Any) -> Parent | None:
    """The parent a W3C ``traceparent`` header names, or None if the value is not a valid one.

    Follows the W3C Trace Context rules: lowercase hex, version ``ff`` invalid, version ``00`` exactly four
    fields, all-zero trace or parent ids invalid; surrounding whitespace is ignored.
    """
    if not isinstance(value, str):
        return None
    found = _TRACEPARENT.fullmatch(value.strip())
    if found is None:
        return None
    version, trace_id, span_id, _flags, extra = found.groups()
    if version == "ff" or (version == "00" and extra is not None):
        return None
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return Parent(trace_id, span_id)


def current_span() -> Any:
    """The application's current OpenTelemetry span if one is recording, else None (call path; never raises).

    Imports nothing: while the application has not imported ``opentelemetry.trace`` there can be no span.
    """
    get = _get_current_span
    if get is None:
        get = _bind_opentelemetry()
        if get is None:
            return None
    try:
        span = get()
        return span if span.is_recording() else None
    except Exception:  # an OpenTelemetry API that misbehaves leaves the call in llmmetrics' own trace
        return None


def _bind_opentelemetry() -> Callable[[], Any] | None:
    global _get_current_span
    module = _modules.get(OTEL_TRACE)
    get = getattr(module, "get_current_span", None) if module is not None else None
    if callable(get):  # a module still being imported has no such function yet: look again next call
        _get_current_span = get
        return get
    return None


def span_parent(span: Any) -> Parent:
    """The W3C ids of an OpenTelemetry span (exporter thread: the span context is immutable)."""
    context = span.get_span_context()
    return Parent(f"{context.trace_id:032x}", f"{context.span_id:016x}")
