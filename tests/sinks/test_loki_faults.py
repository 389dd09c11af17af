"""Loki down, killed processes, 429 storms, flaky 5xx, long outages: nothing lost silently, nothing twice.

These faults need timing the real Loki cannot be made to produce on cue (every third push failing, 429 with
Retry-After, down and up again within milliseconds), so they run against the stand-in; a real Loki killed
and restarted mid-run, and its own refusals, are in test_loki_real.py.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from tests.support.loki_contract_server import LokiContractServer

from llmmetrics.sinks.loki import RECORD_OVERHEAD_BYTES
from tests.support.loki import Harness, index, record

REPO = Path(__file__).resolve().parents[2]




def eventually(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def assert_exactly_once(loki: LokiContractServer, n: int) -> None:
    counts = Counter(index(line) for line in loki.lines())
    assert sorted(counts) == list(range(n)), f"missing: {sorted(set(range(n)) - set(counts))[:10]}"
    assert max(counts.values()) == 1, f"duplicates: {[i for i, c in counts.items() if c > 1][:10]}"


class TestOutageThenRecovery:
    @pytest.mark.parametrize("spool", [False, True], ids=["memory", "spool"])
    def test_loki_down_for_the_first_part_then_up(self, harness: Harness, loki: LokiContractServer,
                                                  tmp_path: Path, spool: bool) -> None:
        """Loki refuses connections for the first half of N records, then returns: all N arrive, none twice."""
        n = 2000
        loki.down()
        sink = harness.sink(loki.url, loki_spool_dir=str(tmp_path) if spool else None)
        slowest = 0.0
        for i in range(n // 2):
            start = time.perf_counter()
            sink.emit(record(i))
            slowest = max(slowest, time.perf_counter() - start)
        assert eventually(lambda: harness.value("llmmetrics_loki_retries_total") >= 1, 10)
        loki.up()
        for i in range(n // 2, n):
            sink.emit(record(i))
        assert sink.flush(30)
        assert_exactly_once(loki, n)
        assert harness.value("llmmetrics_loki_pushes_total", outcome="retry") >= 1
        assert harness.value("llmmetrics_export_errors_total", sink="loki", reason="connection") >= 1
        # emit only enqueues: even while Loki is down no call waits on the network (generous bound)
        assert slowest < 0.5

    def test_emit_never_waits_on_a_stalled_loki(self, harness: Harness, loki: LokiContractServer) -> None:
        """While Loki holds a push unanswered, emit keeps returning at once and the records are kept."""
        loki.stall()
        sink = harness.sink(loki.url, loki_timeout_seconds=30)
        sink.emit(record(0))
        assert loki.wait_for(lambda s: len(s._connections) > 0, 10)
        slowest = 0.0
        for i in range(1, 1000):
            start = time.perf_counter()
            sink.emit(record(i))
            slowest = max(slowest, time.perf_counter() - start)
        assert slowest < 0.5
        loki.release()  # the held request is cut unanswered: the sink retries it
        assert sink.flush(30)
        assert_exactly_once(loki, 1000)


class TestFlakyLoki:
    @pytest.mark.parametrize("spool", [False, True], ids=["memory", "spool"])
    def test_every_third_push_failing_loses_and_duplicates_nothing(
            self, harness: Harness, loki: LokiContractServer, tmp_path: Path, spool: bool) -> None:
        """Many small batches with every third push answered 500: each record arrives exactly once."""
        loki.fail_every(3)
        sink = harness.sink(loki.url, loki_batch_max_entries=10, loki_max_backoff_seconds=0.05,
                            loki_spool_dir=str(tmp_path) if spool else None)
        n = 600
        for i in range(n):
            sink.emit(record(i))
        assert sink.flush(60)
        assert_exactly_once(loki, n)
        assert harness.value("llmmetrics_loki_pushes_total", outcome="retry") >= 1


class TestRateLimited:
    def test_429_storm_honours_retry_after_and_loses_nothing(self, harness: Harness, loki: LokiContractServer) -> None:
        """Under 429 with Retry-After: 1 the sink waits at least 1 s between attempts and delivers everything."""
        loki.rate_limit("1")
        sink = harness.sink(loki.url, loki_max_backoff_seconds=0.1)
        for i in range(300):
            sink.emit(record(i))
        assert loki.wait_for(lambda s: len(s.attempts) >= 3, 20)
        loki.ok()
        assert sink.flush(30)
        assert_exactly_once(loki, 300)
        limited = [a.at for a in loki.attempts if a.status == 429]
        gaps = [b - a for a, b in itertools.pairwise(limited)]
        assert gaps and min(gaps) >= 0.9, gaps  # Retry-After beats the 0.1 s backoff cap
        assert harness.value("llmmetrics_export_errors_total", sink="loki", reason="http_429") >= 3
        assert harness.value("llmmetrics_loki_retries_total") >= 3

    def test_5xx_backoff_grows_and_is_capped(self, harness: Harness, loki: LokiContractServer) -> None:
        """Repeated 500s are retried with backoff capped at loki_max_backoff_seconds, then delivered."""
        loki.fail(500)
        sink = harness.sink(loki.url, loki_max_backoff_seconds=0.3)
        for i in range(50):
            sink.emit(record(i))
        assert loki.wait_for(lambda s: len(s.attempts) >= 6, 20)
        loki.ok()
        assert sink.flush(30)
        assert_exactly_once(loki, 50)
        failed = [a.at for a in loki.attempts if a.status == 500]
        gaps = [b - a for a, b in itertools.pairwise(failed)]
        assert max(gaps) < 0.3 + 1.0  # cap plus generous scheduling slack
        assert min(gaps) >= 0.04  # never a tight loop


class TestBoundedMemory:
    def test_memory_stays_under_the_cap_while_100k_records_meet_a_dead_loki(
            self, harness: Harness, loki: LokiContractServer) -> None:
        """100,000 records with Loki down: the queue never exceeds its byte cap and the excess is counted."""
        loki.down()
        cap = 4_000_000
        sink = harness.sink(loki.url, loki_queue_max_bytes=cap, loki_batch_max_bytes=500_000)
        lines = [record(i, size=900) for i in range(1000)]
        tracemalloc.start()
        try:
            baseline = tracemalloc.get_traced_memory()[0]
            peak_queue = 0
            for i in range(100_000):
                r = lines[i % 1000]
                # a fresh line object per record (bytes(x) would return x itself), as the core renders one per call
                sink.emit(r._replace(line=r.line[:-1] + b"}", trace_id=f"{i:032x}"))
                if i % 1000 == 0:
                    peak_queue = max(peak_queue, sink.queued_bytes())
            grown = tracemalloc.get_traced_memory()[0] - baseline
        finally:
            tracemalloc.stop()
        assert peak_queue <= cap and sink.queued_bytes() <= cap
        # the queue plus the batch being retried, with room for allocator and accounting slack
        assert grown < 1.5 * cap + 2 * 500_000, grown
        # the worker publishes shed counts and the queue depth at least once a second
        assert eventually(lambda: harness.value("llmmetrics_records_dropped_total", sink="loki",
                                                reason="queue_full") > 90_000, 10)
        queued = harness.value("llmmetrics_export_queue_depth", sink="loki")
        per_record = min(len(r.line) for r in lines) + RECORD_OVERHEAD_BYTES
        assert queued <= cap // per_record + 1

    def test_spool_stays_under_its_cap_and_drops_oldest_first(self, harness: Harness, loki: LokiContractServer,
                                                               tmp_path: Path) -> None:
        """With a spool and Loki down, disk use stays under loki_spool_max_bytes; the oldest are dropped, counted."""
        loki.down()
        sink = harness.sink(loki.url, loki_spool_dir=str(tmp_path), loki_spool_max_bytes=2_000_000,
                            loki_queue_max_bytes=1_000_000, loki_batch_max_bytes=200_000)
        n = 20_000
        for i in range(n):
            sink.emit(record(i, size=300))
        sink.close(2.0)
        spooled = harness.value("llmmetrics_loki_spool_bytes")
        assert 0 < spooled <= 2_000_000
        on_disk = sum(p.stat().st_size for p in tmp_path.rglob("*.seg"))
        assert on_disk == spooled
        dropped = sum(harness.value("llmmetrics_records_dropped_total", sink="loki", reason=r)
                      for r in ("spool_full", "queue_full"))
        kept = harness.value("llmmetrics_loki_spool_records")
        assert dropped + kept == n
        # the newest records survive: replay them now that Loki is back
        loki.up()
        replay = harness.sink(loki.url, loki_spool_dir=str(tmp_path))
        assert replay.flush(30)
        got = sorted(index(line) for line in loki.lines())
        assert len(got) == kept and got[-1] == n - 1


CHILD = textwrap.dedent("""
    import sys, time
    from prometheus_client import CollectorRegistry
    from llmmetrics.config import Config
    from llmmetrics.metrics import SelfMetrics
    from llmmetrics.record import Record
    from llmmetrics.sinks.loki import LokiSink

    url, spool_dir, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    registry = CollectorRegistry()
    sink = LokiSink(Config(loki_url=url, trace_file=None, loki_spool_dir=spool_dir, loki_batch_wait_seconds=0.05,
                           loki_max_backoff_seconds=0.2), SelfMetrics(registry))
    for i in range(n):
        line = b'{"kind":"call","i":%d,"pad":"xx"}' % i
        sink.emit(Record(time.time_ns(), line, "call", "info", "openai", "m", "%032x" % i, "%016x" % i,
                         "%032x" % i, None, None))
    deadline = time.monotonic() + 60
    while registry.get_sample_value("llmmetrics_loki_spool_records") != n and time.monotonic() < deadline:
        time.sleep(0.01)
    print("SPOOLED", registry.get_sample_value("llmmetrics_loki_spool_records"), flush=True)
    time.sleep(600)
""")


class TestCrash:
    def test_sigkill_during_an_outage_then_restart_delivers_the_spool(
            self, harness: Harness, loki: LokiContractServer, tmp_path: Path) -> None:
        """A process SIGKILLed while Loki is down leaves its records in the spool; the next process sends them."""
        loki.down()
        n = 3000
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        child = subprocess.Popen([sys.executable, "-c", CHILD, loki.url, str(tmp_path), str(n)],
                                 stdout=subprocess.PIPE, text=True, env=env)
        try:
            assert child.stdout is not None
            line = child.stdout.readline()
            assert line.strip() == f"SPOOLED {float(n)}", line
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        assert child.returncode == -signal.SIGKILL
        loki.up()
        sink = harness.sink(loki.url, loki_spool_dir=str(tmp_path))
        assert sink.flush(30)
        assert_exactly_once(loki, n)
        assert list(tmp_path.rglob("*.seg")) == []
