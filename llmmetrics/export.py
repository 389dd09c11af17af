"""Turning finished calls into trace records, off the call path.

A traced call ends by moving the in-flight gauge down and handing itself to :class:`RecordExporter`:
one deque append. The exporter's thread completes the call (reads the response; counts requests,
duration, time to first token, tokens and cost into the metrics), builds the record dict, runs the
processor pipeline (context merge, sampling, redaction, rendering, secret scrubbing, size bound) and gives
the rendered line to every sink.
Prompts are snapshotted when the call starts, so what the user does to ``messages`` afterwards never
changes the record.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from .metrics import SelfMetrics
from .processors import Pipeline
from .record import Record
from .sinks import Sink
from .sinks.worker import QueuedSink

__all__ = ["RecordExporter", "Finished"]

log = logging.getLogger("llmmetrics")


class Finished(Protocol):
    """A finished call or run: knows how to describe itself as a record dict, and its model label."""

    model_label: str

    def complete(self) -> None: ...

    def record(self) -> dict[str, Any]: ...


class RecordExporter(QueuedSink):
    """Queue of finished calls/runs (bounded by count) → pipeline → sinks."""

    name = "pipeline"

    def __init__(self, pipeline: Pipeline, sinks: tuple[Sink, ...], self_metrics: SelfMetrics, *,
                 max_pending: int = 100_000) -> None:
        self._pipeline = pipeline
        self._sinks = sinks
        self._emitted = {kind: self_metrics.records_emitted.labels(kind) for kind in ("call", "run")}
        self._pipeline_errors = self_metrics.instrumentation_errors.labels("pipeline")
        self._sink_errors = self_metrics.instrumentation_errors.labels("sink")
        super().__init__(self_metrics, max_queue_bytes=max_pending, interval=0.1, batch_size=1024)

    def size_of(self, item: Any) -> int:
        return 1

    def emit(self, item: Finished) -> None:
        """The call path's one step into the exporter: a count-bounded append (``size_of`` is always 1)."""
        with self._lock:
            if not self._closed and self._pending < self._max_bytes:
                self._queued_bytes += 1
                self._pending += 1
                self._queue.append(item)
                full = self._pending == self._batch_size
            else:
                full = None
        if full:
            self._wake.set()
        elif full is None:
            self._refuse(item)

    def _refuse(self, item: Finished) -> None:
        """No room: the record is dropped and counted, but the call itself is still counted in the metrics."""
        self._dropped.inc()
        try:
            item.complete()
        except Exception:
            self._pipeline_errors.inc()
            log.debug("llmmetrics: completing a dropped call failed", exc_info=True)

    def deliver(self, batch: list[Any]) -> None:
        for item in batch:
            self._export(item)

    def _export(self, item: Finished) -> None:
        try:
            record = item.record()
            line = self._pipeline.process(record)
        except Exception:
            self._pipeline_errors.inc()
            log.debug("llmmetrics: building a trace record failed", exc_info=True)
            return
        if line is None:
            return
        kind = record["kind"]
        envelope = Record(record["ts_ns"], line, kind, "error" if record["status"] == "error" else "info",
                          record.get("provider") or "", item.model_label, record["trace_id"], record["span_id"],
                          record.get("call_id") or "", record.get("user_id"), record.get("request_id"))
        self._emitted[kind].inc()
        for sink in self._sinks:
            try:
                sink.emit(envelope)
            except Exception:
                self._sink_errors.inc()
                log.debug("llmmetrics: sink %s failed on emit", getattr(sink, "name", sink), exc_info=True)
