"""The envelope a rendered trace record travels in from the pipeline to the sinks.

The JSON line is rendered once, on the call path; the few fields a sink routes on (timestamp, Loki labels,
structured metadata) ride beside it so no sink ever parses the line again.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import NamedTuple

__all__ = ["Record", "timestamp"]


def timestamp(ts_ns: int) -> datetime:
    """The record's ``timestamp`` (rendered by orjson as ISO-8601 with ``+00:00``)."""
    return datetime.fromtimestamp(ts_ns / 1e9, timezone.utc)


class Record(NamedTuple):
    """One trace record, rendered. ``line`` is UTF-8 JSON without a trailing newline."""

    ts_ns: int
    line: bytes
    kind: str  # "call" | "run"
    level: str  # "info" | "error"
    provider: str
    model: str  # normalised requested model ("" for run records)
    trace_id: str
    span_id: str
    call_id: str  # "" for run records
    user_id: str | None
    request_id: str | None
