"""Ship every trace record to Grafana Loki without blocking a call or silently losing a record.

The call path only appends to a bounded in-memory queue (``emit``: a lock held for an append and an add).
A worker thread takes batches (by entries, bytes or ``loki_batch_wait_seconds``), encodes each one with a
single ``orjson.dumps`` and a single ``zlib.compress`` (gzip level 1), and POSTs it over one persistent
connection. That keeps the GIL hand-offs per batch to a handful, which is what lets the shipper keep up
while an application thread is busy on the CPU (see ``benchmarks/loki_shipping.py``).

Faults: 429, 5xx and connection errors are retried with exponential backoff and full jitter, capped at
``loki_max_backoff_seconds`` and never shorter than ``Retry-After``; after a 429 the pushes are halved (down to
one record) until Loki accepts again, since a push larger than Loki's burst is refused however long one waits.
A 400 means Loki kept the valid entries and refused the others: those are counted by the reason Loki gives
(``too_old``, ``line_too_long``, ``out_of_order``, ``invalid_labels``, else ``rejected``), logged once per
reason, and shipping goes on. Any other 4xx drops the batch, counted ``rejected``. With
``loki_spool_dir`` set, a batch that cannot be delivered, and whatever arrives while Loki is unreachable or
the queue is half full, goes to a crash-safe on-disk spool (``spool.py``) replayed oldest first when Loki
answers again. Without a spool, a full queue drops its oldest records, counted ``reason="queue_full"``.

>>> import llmmetrics
>>> llmmetrics.configure(loki_url="http://localhost:3100", service="checkout")  # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import http.client
import logging
import os
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence

from ..config import Config, ConfigError
from ..metrics import SelfMetrics
from ..record import Record
from .loki_push import (MAX_LINE_BYTES, HTTPTransport, PushEncoder, PushResponse, PushTransport, refused_entries,
                        stream_labels)
from .spool import Spool, SpoolError

__all__ = ["LokiSink"]

logger = logging.getLogger("llmmetrics.loki")

#: Queue accounting per record: the line plus the envelope's fields and the deque slot.
RECORD_OVERHEAD_BYTES = 400
#: A retry never waits less than this, so a tight 5xx loop cannot spin the CPU.
MIN_BACKOFF_SECONDS = 0.05
#: First backoff step; doubles per failed attempt up to ``loki_max_backoff_seconds`` (full jitter below it).
BASE_BACKOFF_SECONDS = 0.5
#: A Retry-After longer than this is treated as this (a misconfigured gateway must not park the shipper).
MAX_RETRY_AFTER_SECONDS = 300.0
#: Bounded wait for the flush registered with ``atexit``.
ATEXIT_TIMEOUT_SECONDS = 5.0
#: Distinct rejection kinds remembered for log-once.
_MAX_LOGGED_ERRORS = 256
#: How much of Loki's answer a log line shows.
_MAX_LOGGED_TEXT = 500

DROP_REASONS = ("queue_full", "spool_full", "rejected", "too_old", "line_too_long", "out_of_order", "invalid_labels",
                "encode_error", "spool_corrupt", "shutdown")


class LokiSink:
    """A ``Sink`` that pushes records to Loki's ``/loki/api/v1/push`` from a background worker.

    Memory is bounded by ``loki_queue_max_bytes`` (plus the two batches in flight); the spool on disk by
    ``loki_spool_max_bytes``. ``flush``/``close`` wait with a bound and never hang, even on a stalled Loki.
    """

    name = "loki"
    #: Encode the next full batch while Loki answers the current push (benchmarks switch it off to compare).
    encode_ahead = True

    def __init__(self, config: Config, self_metrics: SelfMetrics, *, transport: PushTransport | None = None,
                 encoder: PushEncoder | None = None) -> None:
        labels = stream_labels(config)  # validate before anything starts
        self._transport = transport if transport is not None else HTTPTransport.from_config(config)
        self._display_url = getattr(self._transport, "display_url", "Loki")
        self._config = config
        self._encoder = encoder if encoder is not None else PushEncoder(
            labels, structured_metadata=config.loki_structured_metadata)
        self._queue_max = config.loki_queue_max_bytes
        self._batch_max_bytes = config.loki_batch_max_bytes
        self._batch_max_entries = config.loki_batch_max_entries
        #: entries per push now: halved after each 429, doubled back after each success
        self._push_entries = config.loki_batch_max_entries
        self._batch_wait = config.loki_batch_wait_seconds
        self._spool_watermark = config.loki_queue_max_bytes // 2

        m = self_metrics
        self._dropped = {reason: m.records_dropped.labels(self.name, reason) for reason in DROP_REASONS}
        self._pushes = {o: m.loki_pushes.labels(o) for o in ("success", "retry", "rejected", "error")}
        self._export_errors = {r: m.export_errors.labels(self.name, r)
                               for r in ("connection", "http_429", "http_5xx", "http_4xx")}
        self._push_duration = m.loki_push_duration
        self._retries = m.loki_retries
        self._depth_gauge = m.export_queue_depth.labels(self.name)
        self._bytes_gauge = m.export_queue_bytes.labels(self.name)
        self._spool_bytes_gauge = m.loki_spool_bytes
        self._spool_records_gauge = m.loki_spool_records
        self._line_too_long = self._dropped["line_too_long"]

        self._spool: Spool | None = None
        if config.loki_spool_dir:
            self._spool = self._open_spool()
        self._logged_errors: set[str] = set()
        self._replayed = (0, 0)  # (spool segment, records of it Loki accepted) while a replay is under way
        self._failures = 0  # consecutive failed pushes
        self._retry_at = 0.0
        self._closed = False
        self._init_runtime()
        self._worker.start()

        ref = weakref.ref(self)
        self._atexit = lambda: _close_at_exit(ref)
        atexit.register(self._atexit)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=lambda: _restart_after_fork(ref))

    def _init_runtime(self) -> None:
        """State that a forked child must rebuild: locks, the queue, the worker."""
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._queue: deque[Record] = deque()
        self._queued_bytes = 0
        self._shed = 0
        self._inflight = 0
        spool = getattr(self, "_spool", None)
        self._spool_published = spool.records if spool is not None else 0  # as last published to the gauges
        self._flush_requested = False
        self._stopping = False
        self._worker = threading.Thread(target=self._run, name="llmmetrics-loki", daemon=True)

    def _open_spool(self) -> Spool:
        config = self._config
        assert config.loki_spool_dir
        try:
            spool = Spool(config.loki_spool_dir, max_bytes=config.loki_spool_max_bytes,
                          segment_max_bytes=config.loki_batch_max_bytes,
                          segment_max_records=config.loki_batch_max_entries, on_drop=self._count_drop)
        except SpoolError as e:
            raise ConfigError(f"loki_spool_dir: {e.strerror} "
                              "(argument loki_spool_dir or LLMMETRICS_LOKI_SPOOL_DIR)") from None
        except OSError as e:
            raise ConfigError(f"loki_spool_dir: cannot read the spool in {config.loki_spool_dir!r}: {e} "
                              "(argument loki_spool_dir or LLMMETRICS_LOKI_SPOOL_DIR)") from None
        if spool.torn_bytes:
            logger.warning("Loki spool %s: cut a torn tail of %d bytes left by a crash (at most one record lost)",
                           spool.dir, spool.torn_bytes)
            self._count_drop(1, "spool_corrupt")
        if spool.records:
            logger.info("Loki spool %s holds %d records from an earlier run; replaying them", spool.dir, spool.records)
        self._spool_bytes_gauge.set(spool.bytes)
        self._spool_records_gauge.set(spool.records)
        self._spool_published = spool.records
        return spool

    # ---- the call path -------------------------------------------------------------------------------------

    def emit(self, record: Record) -> None:
        """Queue one record: O(1), no I/O. A full queue sheds its oldest records (counted), never blocks."""
        try:
            if self._stopping:  # closed: no worker will ship it
                self._dropped["shutdown"].inc()
                return
            size = len(record.line)
            if size > MAX_LINE_BYTES:
                self._line_too_long.inc()
                return
            queue = self._queue
            with self._lock:
                queue.append(record)
                queued = self._queued_bytes = self._queued_bytes + size + RECORD_OVERHEAD_BYTES
                if queued > self._queue_max:
                    self._shed_oldest()
                n = len(queue)
            # wake the worker for the first record (it starts the batch timer) and for a full batch
            if (n == 1 or n >= self._batch_max_entries or queued >= self._batch_max_bytes + n * RECORD_OVERHEAD_BYTES) \
                    and not self._wake.is_set():
                self._wake.set()
        except Exception:  # never break the user's call
            logger.debug("Loki sink could not queue a record", exc_info=True)

    def _shed_oldest(self) -> None:
        # called with the lock held
        dropped = 0
        while self._queued_bytes > self._queue_max and len(self._queue) > 1:
            old = self._queue.popleft()
            self._queued_bytes -= len(old.line) + RECORD_OVERHEAD_BYTES
            dropped += 1
        # a plain int here; the worker moves it to the counter (a Counter.inc per shed would slow every emit
        # exactly when the application is busiest)
        self._shed += dropped
        if self._shed >= 1024:  # published in bulk; the worker publishes the rest (it may be stuck on Loki)
            self._dropped["queue_full"].inc(self._shed)
            self._shed = 0

    # ---- flush / close -------------------------------------------------------------------------------------

    def _idle(self) -> bool:
        spool = self._spool
        # the published count, not spool.records: flush must not report idle before the gauges say so
        return not self._queue and self._inflight == 0 and (spool is None or self._spool_published == 0)

    def flush(self, timeout: float) -> bool:
        """Send what is queued now (no batch wait); True once nothing is left to deliver, within ``timeout``.

        Records dropped on the way (rejected, too old, shed) count as settled: they are in
        ``llmmetrics_records_dropped_total``, not waiting.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        with self._lock:
            if self._idle():
                return True
            self._flush_requested = True
        self._wake.set()
        with self._settled:
            done = self._settled.wait_for(self._idle, max(0.0, deadline - time.monotonic()))
            self._flush_requested = False
            return done

    def close(self, timeout: float) -> None:
        """Flush for up to ``timeout`` seconds, then stop the worker. Never hangs.

        What could not be sent goes to the spool when there is one (a restart replays it), otherwise it is
        counted as dropped (``reason="shutdown"``).
        """
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + max(0.0, timeout)
        try:
            if self._spool is None or not self._failures:
                self.flush(timeout)
            # else Loki is failing and a spool exists: waiting would only delay exit; the spool keeps the rest
        finally:
            with self._lock:
                self._stopping = True
            self._stop.set()
            self._wake.set()
            self._worker.join(max(0.0, deadline - time.monotonic()))
            if self._worker.is_alive():
                self._transport.abort()  # unblock a send/recv stuck on a stalled server
                self._worker.join(1.0)
            atexit.unregister(self._atexit)

    # ---- the worker ----------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping:
                try:
                    self._step()
                except Exception:
                    logger.exception("Loki sink worker error; continuing")
                    self._stop.wait(MIN_BACKOFF_SECONDS)
            self._drain_on_stop()
        finally:
            with self._settled:
                self._settled.notify_all()

    def _step(self) -> None:
        spool = self._spool
        if spool is not None and self._queued_bytes > self._spool_watermark:
            # Loki is slower than the app: keep memory low by moving the oldest queued batch to disk
            self._spool_batch(self._take_batch(time.monotonic()))
            return
        if spool is not None and spool.records:
            now = time.monotonic()
            if now >= self._retry_at:
                self._replay_one(spool)
            else:  # Loki is down: whatever arrives meanwhile goes to disk in batch-sized segments
                self._spool_batch(self._take_batch(min(self._retry_at, now + self._batch_wait)))
            return
        batch = self._take_batch(None)
        if batch:
            self._deliver(batch)
        self._update_gauges()

    def _take_batch(self, until: float | None) -> list[Record]:
        """Wait for a full batch, the batch wait, a flush or ``until``; take up to one batch from the queue."""
        first_seen: float | None = None
        while True:
            with self._lock:
                queue = self._queue
                now = time.monotonic()
                if queue and first_seen is None:
                    first_seen = now
                due = bool(queue) and (self._flush_requested or self._stopping
                                       or len(queue) >= self._batch_max_entries
                                       or self._queued_bytes
                                       >= self._batch_max_bytes + len(queue) * RECORD_OVERHEAD_BYTES
                                       or now - first_seen >= self._batch_wait  # type: ignore[operator]
                                       or (until is not None and now >= until))
                if due:
                    return self._pop_batch_locked()
                if self._stopping or (until is not None and now >= until):
                    return []
                if first_seen is not None:
                    wait = self._batch_wait - (now - first_seen)
                else:
                    wait = 1.0  # idle: wake up now and then to refresh the gauges
                if until is not None:
                    wait = min(wait, until - now)
            self._update_gauges()
            self._wake.wait(max(0.0, wait))
            self._wake.clear()

    def _pop_batch_locked(self) -> list[Record]:
        """Take up to one batch off the queue (lock held); it counts as in flight until settled."""
        queue = self._queue
        batch = []
        size = 0  # line bytes: what loki_batch_max_bytes limits, as in Loki's own clients
        limit = self._batch_max_bytes
        while queue and len(batch) < self._push_entries:
            n = len(queue[0].line)
            if batch and size + n > limit:
                break
            batch.append(queue.popleft())
            size += n
        self._queued_bytes -= size + len(batch) * RECORD_OVERHEAD_BYTES
        self._inflight += len(batch)
        return batch

    def _take_ready_batch(self) -> list[Record]:
        """Without waiting: the next batch if a full one (or a flush's) is already queued, else nothing."""
        with self._lock:
            queue = self._queue
            if queue and (self._flush_requested or len(queue) >= self._batch_max_entries
                          or self._queued_bytes >= self._batch_max_bytes + len(queue) * RECORD_OVERHEAD_BYTES):
                return self._pop_batch_locked()
        return []

    def _untake(self, batch: list[Record]) -> None:
        """Put a prefetched batch back at the head of the queue (the push before it must be retried)."""
        if batch:
            with self._lock:
                self._queue.extendleft(reversed(batch))
                self._queued_bytes += sum(len(r.line) for r in batch) + len(batch) * RECORD_OVERHEAD_BYTES
                self._inflight -= len(batch)

    def _settle(self) -> None:
        with self._settled:
            self._inflight = 0
            self._settled.notify_all()


    def _drop_too_old(self, records: Sequence[Record]) -> list[Record]:
        horizon = time.time_ns() - int(self._config.loki_replay_max_age_seconds * 1e9)
        kept = [r for r in records if r.ts_ns >= horizon]
        if len(kept) < len(records):
            self._count_drop(len(records) - len(kept), "too_old")
        return kept

    def _deliver(self, batch: list[Record]) -> None:
        """Push batches taken from the queue, retrying with backoff (or spooling when there is a spool).

        While Loki works on one push, the next full batch (if one is already queued) is encoded, so a burst
        drains at the pace of the slower of the two rather than of their sum.
        """
        body: bytes | None = None
        try:
            while batch:
                if body is None:
                    batch = self._drop_too_old(batch)
                    body = self._encode(batch) if batch else None
                    if body is None:
                        return
                ahead: list[tuple[list[Record], bytes | None]] = []
                outcome, delay = self._push(batch, body, (lambda ahead=ahead: ahead.append(self._prefetch()))
                                            if self.encode_ahead else None)
                next_batch, next_body = ahead[0] if ahead else ([], None)
                if outcome == "retry":
                    self._untake(next_batch)
                    if len(batch) > self._push_entries:  # a 429: send the first half alone next time
                        self._untake(batch[self._push_entries:])
                        batch = batch[:self._push_entries]
                    if self._spool is not None:
                        self._retry_at = time.monotonic() + delay
                        self._spool_batch(batch)
                        return
                    if self._backoff_wait(delay) or self._stopping:
                        self._count_drop(len(batch), "shutdown")
                        self._pushes["error"].inc()
                        return
                    body = None  # re-check the replay horizon before the next attempt
                    continue
                with self._settled:
                    self._inflight -= len(batch)
                    self._settled.notify_all()
                batch, body = next_batch, next_body
        finally:
            self._settle()

    def _backoff_wait(self, delay: float) -> bool:
        """Sleep ``delay`` seconds (True if close() interrupted), publishing the gauges every second."""
        deadline = time.monotonic() + delay
        while True:
            self._update_gauges()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self._stop.wait(min(remaining, 1.0)):
                return True

    def _prefetch(self) -> tuple[list[Record], bytes | None]:
        batch = self._drop_too_old(self._take_ready_batch())
        return batch, (self._encode(batch) if batch else None)

    def _encode(self, records: list[Record]) -> bytes | None:
        try:
            return self._encoder.encode(records)
        except Exception as e:
            logger.warning("Loki sink could not encode a batch of %d records (%s); dropped", len(records), e)
            self._count_drop(len(records), "encode_error")
            self._pushes["error"].inc()
            return None

    def _replay_one(self, spool: Spool) -> None:
        oldest = spool.oldest()
        if oldest is None:
            return
        seq, records = oldest
        # a segment is acknowledged whole, but sent in pushes of at most _push_entries (smaller after a 429);
        # what Loki already accepted of it is not sent again
        done = self._replayed if self._replayed[0] == seq else (seq, 0)
        while done[1] < len(records):
            chunk = records[done[1]:done[1] + self._push_entries]
            part = self._drop_too_old(chunk)
            body = self._encode(part) if part else None
            if body is not None:
                outcome, delay = self._push(part, body)
                if outcome == "retry":
                    self._replayed = done
                    self._retry_at = time.monotonic() + delay
                    return
            done = (seq, done[1] + len(chunk))
        spool.ack(seq)
        self._update_spool_gauges()
        with self._settled:
            self._settled.notify_all()

    def _spool_batch(self, batch: list[Record]) -> None:
        if not batch:
            return
        assert self._spool is not None
        try:
            self._spool.append(batch)
        except OSError as e:
            logger.warning("Loki spool %s: write failed (%s); %d records dropped", self._spool.dir, e, len(batch))
            self._count_drop(len(batch), "spool_full")
        self._update_spool_gauges()
        self._settle()

    def _push(self, records: list[Record], body: bytes,
              while_waiting: Callable[[], None] | None = None) -> tuple[str, float]:
        """One POST. Returns (outcome, backoff delay); outcome is success, rejected or retry."""
        start = time.perf_counter()
        waited = 0.0
        try:
            self._transport.send(body)
            if while_waiting is not None:
                t = time.perf_counter()
                while_waiting()
                waited = time.perf_counter() - t
            response: PushResponse | None = self._transport.receive()
            error_text = ""
        except (OSError, http.client.HTTPException) as e:
            response = None
            error_text = f"{type(e).__name__}: {e}"
        self._push_duration.observe(time.perf_counter() - start - waited)
        if response is not None and 200 <= response.status < 300:
            self._pushes["success"].inc()
            if self._failures:
                logger.info("Loki at %s accepts pushes again after %d failed attempts", self._display_url,
                            self._failures)
            self._failures = 0
            self._retry_at = 0.0
            self._push_entries = min(self._batch_max_entries, self._push_entries * 2)
            return "success", 0.0
        if response is not None and response.status != 429 and response.status < 500:
            self._pushes["rejected"].inc()
            self._export_errors["http_4xx"].inc()
            refused = (refused_entries(response.text, self._encoder.stream_sizes(records))
                       if response.status == 400 else {"rejected": len(records)})
            for reason, n in refused.items():
                self._count_drop(n, reason)
            # Loki's texts name timestamps and streams, so they differ from push to push: log once per reason
            key = f"HTTP {response.status} {sorted(refused)}"
            if key not in self._logged_errors and len(self._logged_errors) < _MAX_LOGGED_ERRORS:
                self._logged_errors.add(key)
                shown = ", ".join(f"{n} {reason}" for reason, n in sorted(refused.items()))
                logger.warning("Loki at %s refused %s of a batch of %d records (dropped; logged once per reason): "
                               "HTTP %d: %s", self._display_url, shown, len(records), response.status,
                               response.text[:_MAX_LOGGED_TEXT])
            return "rejected", 0.0
        # retriable: 429, 5xx, no answer
        if response is None:
            self._export_errors["connection"].inc()
            reason = error_text
        else:
            self._export_errors["http_429" if response.status == 429 else "http_5xx"].inc()
            reason = f"HTTP {response.status}: {response.text}"
        self._pushes["retry"].inc()
        self._retries.inc()
        self._failures += 1
        if response is not None and response.status == 429:
            self._push_entries = max(1, min(self._push_entries, len(records)) // 2)
        delay = self._backoff(response.retry_after if response is not None else None)
        if self._failures == 1:
            logger.warning("Loki push to %s failed (%s); retrying with backoff", self._display_url,
                           reason[:_MAX_LOGGED_TEXT])
        return "retry", delay

    def _backoff(self, retry_after: float | None) -> float:
        cap = self._config.loki_max_backoff_seconds
        ceiling = min(cap, BASE_BACKOFF_SECONDS * 2 ** min(self._failures - 1, 30))
        delay = max(MIN_BACKOFF_SECONDS, random.uniform(0.0, ceiling))
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER_SECONDS))
        return delay

    def _drain_on_stop(self) -> None:
        """The worker's last act: spool what is left (a restart replays it) or count it as dropped."""
        with self._lock:
            left = list(self._queue)
            self._queue.clear()
            self._queued_bytes = 0
        if left:
            if self._spool is not None:
                for i in range(0, len(left), self._batch_max_entries):
                    self._spool_batch(left[i:i + self._batch_max_entries])
            else:
                self._count_drop(len(left), "shutdown")
        if self._spool is not None:
            self._spool.close()
        self._update_gauges()

    # ---- accounting ----------------------------------------------------------------------------------------

    def _count_drop(self, n: int, reason: str) -> None:
        if n:
            self._dropped[reason].inc(n)

    def _update_gauges(self) -> None:
        if self._shed:
            with self._lock:
                shed, self._shed = self._shed, 0
            self._dropped["queue_full"].inc(shed)
        self._depth_gauge.set(len(self._queue))
        self._bytes_gauge.set(self._queued_bytes)

    def _update_spool_gauges(self) -> None:
        if self._spool is not None:
            records = self._spool.records
            self._spool_bytes_gauge.set(self._spool.bytes)
            self._spool_records_gauge.set(records)
            with self._lock:
                self._spool_published = records

    def queued_bytes(self) -> int:
        """Bytes held in the in-memory queue (the figure bounded by ``loki_queue_max_bytes``)."""
        return self._queued_bytes

    # ---- process lifecycle ---------------------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        """The parent's worker thread does not exist here: rebuild state and start a fresh worker.

        The child starts with an empty queue (the parent ships what it had queued) and its own spool slot.
        """
        if self._closed:
            return
        self._init_runtime()
        self._failures = 0
        self._retry_at = 0.0
        try:
            self._transport.reset_after_fork()
            if self._spool is not None:
                self._spool.forget_after_fork()
                self._spool = None
                self._spool = self._open_spool()
        except Exception as e:  # the child still ships, only without a spool
            logger.warning("Loki sink in forked process %d runs without a spool: %s", os.getpid(), e)
        self._worker.start()


def _close_at_exit(ref: weakref.ref[LokiSink]) -> None:
    sink = ref()
    if sink is not None:
        sink.close(min(ATEXIT_TIMEOUT_SECONDS, sink._config.loki_timeout_seconds))


def _restart_after_fork(ref: weakref.ref[LokiSink]) -> None:
    sink = ref()
    if sink is not None:
        try:
            sink._after_fork_in_child()
        except Exception:
            logger.exception("Loki sink could not restart after fork")
