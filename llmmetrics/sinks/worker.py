"""A sink base that takes records on the call path and delivers them in batches on its own thread.

``emit`` is a ``SimpleQueue.put`` (lock-free in CPython) plus a byte count checked against a cap: past the
cap the record is dropped and counted, so a stuck destination costs memory up to the cap and no more.
The worker restarts itself in a forked child, and ``close`` waits a bounded time.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import weakref
from typing import Any

from ..metrics import SelfMetrics
from ..record import Record

__all__ = ["QueuedSink"]

log = logging.getLogger("llmmetrics")
_BATCH = 512
_STOP = None


class QueuedSink:
    """Subclasses implement ``deliver(batch)``; everything about queueing and threads lives here."""

    name = "queued"

    def __init__(self, self_metrics: SelfMetrics, *, max_queue_bytes: int = 64_000_000) -> None:
        self._self = self_metrics
        self._max_bytes = max_queue_bytes
        self._depth = self_metrics.export_queue_depth.labels(self.name)
        self._bytes_gauge = self_metrics.export_queue_bytes.labels(self.name)
        self._dropped = self_metrics.records_dropped.labels(self.name, "queue_full")
        self._errors = self_metrics.export_errors
        self._closed = False
        self._start()
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (s := ref()) is not None and s._start())

    def _start(self) -> None:
        self._queue: queue.SimpleQueue[Record | None] = queue.SimpleQueue()
        self._pending = 0  # records emitted but not yet delivered
        self._queued_bytes = 0
        self._counts = threading.Lock()
        self._idle = threading.Condition(self._counts)
        self._thread = threading.Thread(target=self._run, name=f"llmmetrics-{self.name}", daemon=True)
        self._thread.start()

    def emit(self, record: Record) -> None:
        size = len(record.line)
        with self._counts:
            if self._closed or self._queued_bytes + size > self._max_bytes:
                self._dropped.inc()
                return
            self._queued_bytes += size
            self._pending += 1
        self._queue.put(record)

    def deliver(self, batch: list[Record]) -> None:
        raise NotImplementedError

    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending > 0:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._idle.wait(min(left, 0.05))
        return True

    def close(self, timeout: float) -> None:
        if self._closed:
            return
        delivered = self.flush(timeout)
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout=max(timeout, 0.1) if delivered else 0.1)
        if not delivered and self._pending:
            self._self.records_dropped.labels(self.name, "shutdown").inc(self._pending)
            log.warning("llmmetrics %s sink closed with %d undelivered records", self.name, self._pending)
        self._release()

    def _release(self) -> None:
        """Release resources held by the subclass (files, sockets). Called once, after the worker stops."""

    def _run(self) -> None:
        get, get_nowait = self._queue.get, self._queue.get_nowait
        while True:
            first = get()
            if first is _STOP:
                return
            batch: list[Any] = [first]
            stop = False
            try:
                while len(batch) < _BATCH:
                    item = get_nowait()
                    if item is _STOP:
                        stop = True
                        break
                    batch.append(item)
            except queue.Empty:
                pass
            self._deliver_counted(batch)
            if stop:
                return

    def _deliver_counted(self, batch: list[Record]) -> None:
        try:
            self.deliver(batch)
        except Exception as exc:  # the destination failed: count and log, keep the worker alive
            self._errors.labels(self.name, type(exc).__name__).inc()
            self._self.records_dropped.labels(self.name, "export_error").inc(len(batch))
            log.warning("llmmetrics %s sink failed to deliver %d records: %s", self.name, len(batch), exc)
        size = sum(len(r.line) for r in batch)
        with self._idle:
            self._queued_bytes -= size
            self._pending -= len(batch)
            self._depth.set(self._pending)
            self._bytes_gauge.set(self._queued_bytes)
            self._idle.notify_all()
