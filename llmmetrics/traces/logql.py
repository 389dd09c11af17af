"""Translate a :class:`~llmmetrics.traces.filters.Query` into LogQL, in the order Loki evaluates cheapest.

1. stream selector from the few indexed labels the Loki sink writes: ``service_name``, ``env``,
   ``provider`` and ``level`` (``level="error"`` exactly when ``status`` is ``error``);
2. free text as a line filter ``|= "..."`` (no parsing needed);
3. ids as structured-metadata filters (``| trace_id="..."``), which Loki 3 evaluates without parsing
   the line — or after ``| json`` when the sink was configured without structured metadata;
4. ``| json`` and label filters for everything else (``| model="gpt-4o-mini"``, ``| latency_ms > 3000``);
5. ``| __error__=""``, dropping lines whose fields could not be parsed or compared (a null cost
   against ``--max-cost``), which the local scan treats as non-matching too.

Time bounds are not LogQL: they travel as query_range's ``start``/``end``.

>>> build_logql(Query(status="error", model="gpt-4o-mini", min_latency_ms=3000), service="checkout")
'{service_name="checkout", level="error"} | json | kind="call" | model="gpt-4o-mini" | latency_ms >= 3000 | __error__=""'
"""

from __future__ import annotations

from .filters import Query

__all__ = ["build_logql", "logql_string"]

#: ids the Loki sink attaches as structured metadata (spec: trace_id, span_id, call_id, user_id, request_id)
_METADATA_FIELDS = (("trace_id", "trace_id"), ("call_id", "call_id"), ("user_id", "user_id"), ("request_id", "request_id"))
#: other exact filters, as the label names ``| json`` produces (nested ``error.type`` becomes ``error_type``)
_PARSED_FIELDS = (("model", "model"), ("operation", "operation"), ("error_type", "error_type"))


def logql_string(value: str) -> str:
    """Quote ``value`` as a LogQL (Go-syntax) double-quoted string literal."""
    out = ['"']
    for char in value:
        if char == "\\":
            out.append("\\\\")
        elif char == '"':
            out.append('\\"')
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char == "\r":
            out.append("\\r")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _number(value: float) -> str:
    """A LogQL number literal: plain decimal, never exponent notation (``1e-05`` would not parse)."""
    text = f"{value:.12f}".rstrip("0").rstrip(".")
    return text or "0"


def build_logql(
    query: Query,
    *,
    service: str,
    env: str | None = None,
    structured_metadata: bool = True,
) -> str:
    """Build the log query answering ``query`` for records written by the service ``service``."""
    selector = [f"service_name={logql_string(query.service or service)}"]
    if query.env or env:
        selector.append(f"env={logql_string(query.env or env or '')}")
    if query.provider:
        selector.append(f"provider={logql_string(query.provider)}")
    if query.status:
        selector.append(f"level={logql_string('error' if query.status == 'error' else 'info')}")
    stages = ["{" + ", ".join(selector) + "}"]

    if query.text:
        stages.append(f"|= {logql_string(query.text)}")

    id_filters = [
        f"| {label}={logql_string(getattr(query, attribute))}"
        for attribute, label in _METADATA_FIELDS
        if getattr(query, attribute)
    ]
    if structured_metadata:
        stages.extend(id_filters)

    parsed: list[str] = []
    if not structured_metadata:
        parsed.extend(id_filters)
    if query.kind != "all":
        parsed.append(f"| kind={logql_string(query.kind)}")
    for attribute, label in _PARSED_FIELDS:
        value = getattr(query, attribute)
        if value:
            parsed.append(f"| {label}={logql_string(value)}")
    for low, high, label in (
        (query.min_latency_ms, query.max_latency_ms, "latency_ms"),
        (query.min_cost_usd, query.max_cost_usd, "cost_usd"),
    ):
        if low is not None:
            parsed.append(f"| {label} >= {_number(low)}")
        if high is not None:
            parsed.append(f"| {label} <= {_number(high)}")
    if parsed:
        stages.append("| json")
        stages.extend(parsed)
        stages.append('| __error__=""')
    return " ".join(stages)
