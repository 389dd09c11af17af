"""A sink base that takes records on the call path and delivers them in batches on its own thread.

``emit`` appends to a deque under a short lock and checks a byte cap: past the cap the record is dropped and
counted, so a stuck destination costs memory up to the cap and no more. The worker is not woken per record
(a wake-up per call would hand the GIL to the worker on every call); it wakes every ``interval`` seconds,
when a batch is full, or when ``flush``/``close`` ask. It restarts itself in a forked child, and ``close``
waits a bounded time.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
import weakref

from ..metrics import SelfMetrics
from ..record import Record

__all__ = ["QueuedSink"]

log = logging.getLogger("llmmetrics")


class QueuedSink:
    """Subclasses implement ``deliver(batch)``; everything about queueing and threads lives here."""

    name = "queued"

    def __init__(self, self_metrics: SelfMetrics, *, max_queue_bytes: int = 64_000_000, interval: float = 0.2,
                 batch_size: int = 2048) -> None:
        self._self = self_metrics
        self._max_bytes = max_queue_bytes
        self._interval = interval
        self._batch_size = batch_size
        self._depth = self_metrics.export_queue_depth.labels(self.name)
        self._bytes_gauge = self_metrics.export_queue_bytes.labels(self.name)
        self._dropped = self_metrics.records_dropped.labels(self.name, "queue_full")
        self._errors = self_metrics.export_errors
        self._closed = False
        self._start()
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (s := ref()) is not None and s._start())

    def _start(self) -> None:
        self._queue: collections.deque[Record] = collections.deque()
        self._pending = 0  # records emitted but not yet delivered (or given up)
        self._queued_bytes = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=f"llmmetrics-{self.name}", daemon=True)
        self._thread.start()

    def size_of(self, record: Record) -> int:
        """What an item counts against the queue cap (bytes of the line by default)."""
        return len(record.line)

    def emit(self, record: Record) -> None:
        size = self.size_of(record)
        with self._lock:
            if self._closed or self._queued_bytes + size > self._max_bytes:
                self._dropped.inc()
                return
            self._queued_bytes += size
            self._pending += 1
            self._queue.append(record)
            full = self._pending == self._batch_size
        if full:
            self._wake.set()

    def deliver(self, batch: list[Record]) -> None:
        raise NotImplementedError

    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        self._wake.set()
        with self._idle:
            while self._pending > 0:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._wake.set()
                self._idle.wait(min(left, 0.05))
        return True

    def close(self, timeout: float) -> None:
        if self._closed:
            return
        delivered = self.flush(timeout)
        with self._lock:
            self._closed = True
            left = self._pending
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=max(timeout, 0.1) if delivered else 0.1)
        if left:
            self._self.records_dropped.labels(self.name, "shutdown").inc(left)
            log.warning("llmmetrics %s sink closed with %d undelivered records", self.name, left)
        if not self._thread.is_alive():
            self._release()

    def _release(self) -> None:
        """Release resources held by the subclass (files, sockets). Called once, after the worker stops."""

    def _run(self) -> None:
        queue = self._queue
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            while queue:
                batch = [queue.popleft() for _ in range(min(len(queue), self._batch_size))]
                self._deliver_counted(batch)
            if self._stop:
                return

    def _deliver_counted(self, batch: list[Record]) -> None:
        try:
            self.deliver(batch)
        except Exception as exc:  # the destination failed: count and log, keep the worker alive
            self._errors.labels(self.name, type(exc).__name__).inc()
            self._self.records_dropped.labels(self.name, "export_error").inc(len(batch))
            log.warning("llmmetrics %s sink failed to deliver %d records: %s", self.name, len(batch), exc)
        size = sum(map(self.size_of, batch))
        with self._idle:
            self._queued_bytes -= size
            self._pending -= len(batch)
            self._depth.set(self._pending)
            self._bytes_gauge.set(self._queued_bytes)
            self._idle.notify_all()
