"""Per-call overhead and memory while Loki is down: live vs connection refused vs a stalled server.

Run: ``python benchmarks/dead_backend.py [--calls N] [--quick] [--queue-bytes B]``. Prints a table and
writes ``benchmarks/results/dead_backend.json``.

For each backend state the instrumented client (metrics, trace record, file sink, Loki sink at 100 %
sampling) is measured against the bare client, interleaved call by call in this process, after a warm-up.
Between blocks of calls the Loki sink's in-memory queue and the process RSS are sampled, so the table shows
that a dead backend neither slows the call path nor grows memory past ``loki_queue_max_bytes`` (the queue
sheds its oldest records, counted in ``llmmetrics_records_dropped_total{sink="loki",reason="queue_full"}``).

States: ``live`` (``benchmarks/loki_receiver.py`` answering 204), ``refused`` (a closed port: every push
fails at once and is retried with backoff), ``stalled`` (the receiver with ``--stall``: accepts, reads,
never answers, so each push waits for ``loki_timeout_seconds``).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from overhead import Receiver, configure  # noqa: E402

import llmmetrics  # noqa: E402

COLUMNS = ("state", "n", "bare_median_us", "median_us", "paired_added_us", "added_p99_us", "ratio",
           "added_cpu_us", "queue_max_bytes", "queue_cap_bytes", "dropped", "rss_growth_mb")


def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def loki_sink() -> Any:
    return next(s for s in llmmetrics.runtime().sinks if s.name == "loki")


def dropped(registry: Any) -> float:
    total = 0.0
    for reason in ("queue_full", "spool_full", "shutdown"):
        total += registry.get_sample_value("llmmetrics_records_dropped_total", {"sink": "loki", "reason": reason}) or 0.0
    return total


def measure_state(state: str, url: str, trace_dir: str, n: int, blocks: int, queue_bytes: int,
                  cpu_calls: int) -> dict[str, Any]:
    rt = configure(trace_dir, url, loki_queue_max_bytes=queue_bytes, loki_timeout_seconds=5.0)
    bare = common.inprocess_client()
    inst = llmmetrics.instrument(common.inprocess_client())
    fa, fb = (lambda: common.chat(bare)), (lambda: common.chat(inst))
    common.paired(fa, fb, max(20, n // 10), 0)  # warm-up: caches, series, the sink's first push attempts
    sink = loki_sink()
    rss0 = rss_bytes()
    ta: list[int] = []
    tb: list[int] = []
    queue_samples: list[int] = []
    rss_samples: list[int] = []
    per_block = max(1, n // blocks)
    for _ in range(blocks):
        a, b = common.paired(fa, fb, per_block, 0)
        ta += a
        tb += b
        rt.exporter.flush(10.0)  # every record so far has reached the Loki sink's queue
        queue_samples.append(sink.queued_bytes())
        rss_samples.append(rss_bytes())
    cpu = common.cpu_blocks(fa, fb, cpu_calls, 3, lambda: rt.exporter.flush(10.0))
    rt.exporter.flush(10.0)
    queue_samples.append(sink.queued_bytes())
    row = {"state": state, **common.summarize(ta, tb), "added_cpu_us": cpu["added_cpu_us"], "bare_cpu_us": cpu["bare_cpu_us"],
           "queue_max_bytes": max(queue_samples), "queue_cap_bytes": queue_bytes,
           "queue_samples_bytes": queue_samples, "dropped": dropped(rt.registry),
           "rss_growth_mb": round((max(rss_samples) - rss0) / 2**20, 1), "rss_samples_mb": [round(r / 2**20, 1) for r in rss_samples],
           "records_emitted": rt.registry.get_sample_value("llmmetrics_records_emitted_total", {"kind": "call"})}
    row["queue_within_cap"] = row["queue_max_bytes"] <= queue_bytes
    llmmetrics.shutdown(1.0)  # bounded: with a dead backend the remaining records are dropped and counted
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=None, help="interleaved pairs per state (default 6000)")
    parser.add_argument("--quick", action="store_true", help="600 pairs per state")
    parser.add_argument("--queue-bytes", type=int, default=2_000_000,
                        help="loki_queue_max_bytes for the run (small, so the cap is reached; default 2 MB)")
    parser.add_argument("--results-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    n = args.calls or (600 if args.quick else 6000)
    blocks = 6
    cpu_calls = max(20, min(500, n // 10))
    started = time.perf_counter()
    machine = common.machine_info()
    trace_dir = tempfile.mkdtemp(prefix="llmmetrics-dead-")
    rows = []
    for state in ("live", "refused", "stalled"):
        receiver = Receiver(stall=True) if state == "stalled" else Receiver() if state == "live" else None
        url = receiver.url if receiver else f"http://127.0.0.1:{closed_port()}"
        try:
            rows.append(measure_state(state, url, trace_dir, n, blocks, args.queue_bytes, cpu_calls))
        finally:
            if receiver:
                receiver.stop()
    live = next(r for r in rows if r["state"] == "live")
    for r in rows:
        r["added_vs_live_us"] = round(r["paired_added_us"] - live["paired_added_us"], 2)
    result = {"benchmark": "dead_backend", "machine": machine,
              "settings": {"pairs_per_state": n, "blocks": blocks, "loki_queue_max_bytes": args.queue_bytes,
                           "loki_timeout_seconds": 5.0, "spool": None, "workload": "sync chat, in-process transport"},
              "rows": rows, "median_added_us": statistics.median(r["paired_added_us"] for r in rows),
              "seconds": round(time.perf_counter() - started, 1)}
    path = common.write_results("dead_backend", result, args.results_dir)
    common.print_table("Loki live vs dead (µs per sync chat call; queue bytes sampled between blocks)", rows,
                       COLUMNS + ("added_vs_live_us",))
    print(f"\ntook {result['seconds']} s; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
