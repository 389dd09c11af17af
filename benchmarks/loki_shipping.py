"""Loki shipping: throughput, burst drain, a CPU-bound application, and a dead backend.

Run: ``python benchmarks/loki_shipping.py [--quick]``. Prints tables and writes
``benchmarks/results/loki_shipping.json``. The receiver (``loki_receiver.py``) runs in its own process so it
never competes with the shipper for the GIL; records are realistic call records of about 1.3 KB.

1. encode: records/s that one core serialises and compresses (no network), per encoder.
2. burst: 100,000 records emitted at once; time until ``flush`` reports them all delivered, and the
   process CPU spent per record (records/s per core); with and without encoding the next batch while the
   receiver works on the current one. The queue cap is raised to 512 MB so the burst fits in memory.
3. cpu_bound_app: the application thread runs back-to-back CPU work, emitting one record per "call", for a
   fixed time; the backlog (queue bytes) is sampled every 0.5 s and delivered records/s are read from the
   receiver. Encoders: a streaming gzip writer (one write per record, level 6: the way a shipper is often
   first written) vs one ``orjson.dumps`` + one ``zlib.compress`` per batch at level 6 and level 1; bodies
   sent in one ``sendall`` or in 16 KB chunks; and the streaming writer again with a 1 ms switch interval.
4. dead_backend: ``emit`` cost and the queue's size with the receiver live, refusing connections, and
   stalled (accepts, never answers), against ``loki_queue_max_bytes``: three sinks emitting in interleaved
   1000-record chunks (A B C A B C …) so that machine noise hits all three alike.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import orjson

from llmmetrics.config import Config
from llmmetrics.metrics import SelfMetrics
from llmmetrics.record import Record
from llmmetrics.sinks.loki import LokiSink
from llmmetrics.sinks.loki_push import HTTPTransport, PushEncoder

RESULTS = REPO / "benchmarks" / "results" / "loki_shipping.json"
WORDS = ["the", "order", "refund", "customer", "shipping", "invoice", "delayed", "package", "please", "check", "status", "account", "payment", "card", "address", "warehouse", "tracking", "number", "reply", "summary", "agent", "policy", "return", "window", "days"]
LABELS = {"service_name": "bench", "env": "bench"}


# ---- realistic records -----------------------------------------------------------------------------------

def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def make_templates(n: int = 256, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        rec = {
            "kind": "call", "call_id": "%032x" % rng.getrandbits(128), "trace_id": "%032x" % rng.getrandbits(128),
            "span_id": "%016x" % rng.getrandbits(64), "parent_span_id": None, "parent_trace_id": None,
            "run_name": None, "timestamp": "2026-11-27T14:40:48.123456+00:00", "ts_ns": 1795787648123456000,
            "service": "bench", "env": "bench", "provider": "openai", "operation": "chat", "model": "gpt-4o-mini",
            "response_model": "gpt-4o-mini-2024-07-18", "stream": False, "status": "success",
            "latency_ms": round(rng.uniform(300, 3000), 3), "ttft_ms": None, "input_tokens": rng.randint(50, 900),
            "output_tokens": rng.randint(20, 400), "cached_input_tokens": 0, "reasoning_tokens": 0,
            "total_tokens": 0, "cost_usd": round(rng.uniform(0, 0.01), 6), "error": None,
            "messages": [{"role": "system", "content": _text(rng, 25)}, {"role": "user", "content": _text(rng, 40)}],
            "kwargs": {"temperature": 0.2, "max_tokens": 512}, "output": _text(rng, 50), "finish_reason": "stop",
            "tool_calls": None, "provider_request_id": "req_%024x" % rng.getrandbits(96), "user_id": f"u-{i % 50}",
            "request_id": None, "feature_flags": {}, "context": {}, "sampled": "ratio", "truncated": False,
        }
        lines.append(orjson.dumps(rec))
    return lines


def make_record(i: int, templates: list[bytes], copy: bool = False) -> Record:
    line = templates[i % len(templates)]
    return Record(time.time_ns(), line[:-1] + b"}" if copy else line, "call", "error" if i % 20 == 0 else "info",
                  "openai", "gpt-4o-mini", "%032x" % i, "%016x" % i, "%032x" % (i + 1), f"u-{i % 50}", None)


# ---- encoders and transports compared ---------------------------------------------------------------------

class StreamingGzipEncoder(PushEncoder):
    """The shape a shipper often starts with: per-record json.dumps written into a streaming GzipFile."""

    def __init__(self, level: int) -> None:
        super().__init__(LABELS, structured_metadata=True, gzip_level=level)
        self._gz_level = level
        self.compressor = "gzip module"

    def encode(self, records: Any) -> bytes:
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=self._gz_level) as gz:
            gz.write(b'{"streams":[')
            groups: dict[tuple[str, str], list[Record]] = {}
            for r in records:
                groups.setdefault((r.provider, r.level), []).append(r)
            for n, ((provider, level), group) in enumerate(groups.items()):
                group.sort(key=lambda r: r.ts_ns)
                head = json.dumps({**LABELS, "provider": provider, "level": level})
                gz.write((("," if n else "") + '{"stream":' + head + ',"values":[').encode())
                for k, r in enumerate(group):
                    meta = {"trace_id": r.trace_id, "span_id": r.span_id, "call_id": r.call_id}
                    entry = json.dumps([str(r.ts_ns), r.line.decode(), meta])
                    gz.write(((", " if k else "") + entry).encode())
                gz.write(b"]}")
            gz.write(b"]}")
        return buf.getvalue()


class ChunkedTransport(HTTPTransport):
    """Sends the body in 16 KB writes (one GIL hand-off each) instead of one ``sendall``."""

    CHUNK = 16 * 1024

    def _send(self, conn: Any, body: bytes) -> None:
        conn.putrequest("POST", self.path, skip_accept_encoding=True)
        for k, v in self.headers.items():
            conn.putheader(k, v)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        for i in range(0, len(body), self.CHUNK):
            conn.send(body[i:i + self.CHUNK])


# ---- receiver process -----------------------------------------------------------------------------------

class Receiver:
    def __init__(self, stall: bool = False) -> None:
        args = [sys.executable, str(REPO / "benchmarks" / "loki_receiver.py")] + (["--stall"] if stall else [])
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline().split()[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(self.url + "/stats", timeout=10) as resp:
            return json.loads(resp.read())

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def new_sink(url: str, *, encoder: PushEncoder | None = None, transport: Any = None, **options: Any) -> tuple[LokiSink, CollectorRegistry]:
    registry = CollectorRegistry()
    config = Config(loki_url=url, trace_file=None, service="bench", env="bench", **options)
    return LokiSink(config, SelfMetrics(registry), encoder=encoder, transport=transport), registry


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ---- 1. encode ----------------------------------------------------------------------------------------

def bench_encode(templates: list[bytes], batches: int) -> list[dict[str, Any]]:
    records = [make_record(i, templates) for i in range(5000)]
    raw = sum(len(r.line) for r in records)
    rows = []
    encoders = [("orjson+isal level 1", PushEncoder(LABELS, structured_metadata=True, gzip_level=1,
                                                    compressor="isal")),
                ("orjson+zlib level 1", PushEncoder(LABELS, structured_metadata=True, gzip_level=1,
                                                    compressor="zlib")),
                ("orjson+zlib level 6", PushEncoder(LABELS, structured_metadata=True, gzip_level=6)),
                ("streaming gzip level 6", StreamingGzipEncoder(6))]
    for name, enc in encoders:
        enc.encode(records)  # warm-up
        times = []
        for _ in range(batches):
            start = time.process_time()
            body = enc.encode(records)
            times.append(time.process_time() - start)
        best = statistics.median(times)
        if name.startswith("orjson+isal") and enc.compressor != "isal":
            continue  # isal not installed
        rows.append({"encoder": name, "records_per_s": round(len(records) / best),
                     "mb_per_s_in": round(raw / best / 1e6, 1), "compression_ratio": round(raw / len(body), 1)})
    return rows


# ---- 2. burst -----------------------------------------------------------------------------------------

def bench_burst(templates: list[bytes], n: int) -> list[dict[str, Any]]:
    rows = []
    for level, compressor, ahead in ((1, "isal", True), (1, "isal", False), (1, "zlib", True), (1, "zlib", False),
                                     (6, "zlib", True)):
        receiver = Receiver()
        try:
            enc = PushEncoder(LABELS, structured_metadata=True, gzip_level=level, compressor=compressor)
            sink, registry = new_sink(receiver.url, encoder=enc, loki_queue_max_bytes=512_000_000)
            sink.encode_ahead = ahead
            records = [make_record(i, templates, copy=True) for i in range(n)]
            cpu0, t0 = time.process_time(), time.perf_counter()
            for r in records:
                sink.emit(r)
            t_emit = time.perf_counter() - t0
            ok = sink.flush(120)
            drained = time.perf_counter() - t0
            cpu = time.process_time() - cpu0
            got = receiver.stats()["records"]
            dropped = sum(s.value for m in registry.collect() if m.name == "llmmetrics_records_dropped"
                          for s in m.samples if s.name.endswith("_total"))
            sink.close(5)
            rows.append({"gzip_level": level, "compressor": enc.compressor, "encode_ahead": ahead, "records": n, "delivered": got, "dropped": dropped, "flush_ok": ok,
                         "emit_s": round(t_emit, 3), "drain_s": round(drained, 3),
                         "records_per_s": round(got / drained), "cpu_us_per_record": round(cpu / n * 1e6, 2),
                         "records_per_s_per_core": round(n / cpu)})
            del records
        finally:
            receiver.stop()
    return rows


# ---- 3. CPU-bound app ----------------------------------------------------------------------------------

def _busy(iterations: int) -> int:
    x = 0
    for k in range(iterations):
        x += k * k
    return x


def _calibrate(target_us: float) -> int:
    """Iterations of ``_busy`` that take about ``target_us`` of CPU on this machine."""
    n = 20000
    best = min(_timed(n) for _ in range(5))
    return max(1, int(n * target_us / (best * 1e6)))


def _timed(n: int) -> float:
    start = time.process_time()
    _busy(n)
    return time.process_time() - start


def bench_cpu_bound(templates: list[bytes], seconds: float) -> list[dict[str, Any]]:
    def batch(level: int, compressor: str) -> Any:
        return lambda: PushEncoder(LABELS, structured_metadata=True, gzip_level=level, compressor=compressor)

    default = sys.getswitchinterval()
    variants = [
        ("streaming gzip 6, 16 KB writes", lambda: StreamingGzipEncoder(6), True, default),
        ("streaming gzip 6, 16 KB writes, switch interval 1 ms", lambda: StreamingGzipEncoder(6), True, 0.001),
        ("batch zlib 6, one sendall", batch(6, "zlib"), False, default),
        ("batch zlib 1, 16 KB writes", batch(1, "zlib"), True, default),
        ("batch zlib 1, one sendall", batch(1, "zlib"), False, default),
        ("batch isal 1, one sendall", batch(1, "isal"), False, default),
    ]
    rows = []
    for call_cpu_us in (1000, 200, 50):
        iterations = _calibrate(call_cpu_us)
        for name, make_encoder, chunked, switch_interval in variants:
            receiver = Receiver()
            sys.setswitchinterval(switch_interval)  # process-wide: shown for comparison, never set by the sink
            try:
                transport = ChunkedTransport(receiver.url, timeout=10) if chunked else None
                encoder = make_encoder()
                sink, _ = new_sink(receiver.url, encoder=encoder, transport=transport,
                                   loki_queue_max_bytes=1_000_000_000)
                backlog = []
                i = 0
                start = time.perf_counter()
                next_sample = start + 0.5
                while True:
                    now = time.perf_counter()
                    if now >= next_sample:
                        backlog.append(round(sink.queued_bytes() / 1e6, 1))
                        next_sample += 0.5
                        if now - start >= seconds:
                            break
                    _busy(iterations)  # the application's own CPU work per call
                    sink.emit(make_record(i, templates))
                    i += 1
                elapsed = time.perf_counter() - start
                delivered = receiver.stats()["records"]
                t_flush = time.perf_counter()
                ok = sink.flush(120)
                catch_up = time.perf_counter() - t_flush
                sink.close(5)
                rows.append({"app_cpu_us_per_call": call_cpu_us, "variant": name,
                             "compressor": getattr(encoder, "compressor", "gzip module"),
                             "app_records_per_s": round(i / elapsed),
                             "shipped_records_per_s": round(delivered / elapsed),
                             "backlog_mb_end": backlog[-1], "backlog_mb_max": max(backlog),
                             "backlog_mb_series": backlog, "catch_up_s_after_app_stops": round(catch_up, 2),
                             "flush_ok": ok})
            finally:
                sys.setswitchinterval(default)
                receiver.stop()
    return rows


# ---- 4. dead backend -----------------------------------------------------------------------------------

def bench_dead_backend(templates: list[bytes], n: int) -> list[dict[str, Any]]:
    """Three sinks side by side (live, refused, stalled), emitting in interleaved 1000-record chunks."""
    cap = 64_000_000
    live, stalled = Receiver(), Receiver(stall=True)
    urls = {"live": live.url, "refused": f"http://127.0.0.1:{free_port()}", "stalled": stalled.url}
    try:
        sinks = {state: new_sink(url, loki_queue_max_bytes=cap, loki_timeout_seconds=30)
                 for state, url in urls.items()}
        records = [make_record(i, templates) for i in range(2000)]
        per_chunk: dict[str, list[float]] = {state: [] for state in sinks}
        max_queue = {state: 0 for state in sinks}
        rss0 = rss_bytes()
        for c in range(n // 1000):
            for state, (sink, _) in sinks.items():
                fresh = [r._replace(line=r.line[:-1] + b"}") for r in records[(c % 2) * 1000:(c % 2 + 1) * 1000]]
                t0 = time.perf_counter_ns()
                for r in fresh:
                    sink.emit(r)
                per_chunk[state].append((time.perf_counter_ns() - t0) / 1000)
                max_queue[state] = max(max_queue[state], sink.queued_bytes())
        rss_growth = rss_bytes() - rss0
        rows = []
        for state, (sink, registry) in sinks.items():
            t_close = time.perf_counter()
            sink.close(2)
            close_s = time.perf_counter() - t_close
            shed = registry.get_sample_value("llmmetrics_records_dropped_total", {"sink": "loki", "reason": "queue_full"})
            chunks = sorted(per_chunk[state])
            rows.append({"backend": state, "emits": n, "emit_ns_median": round(statistics.median(chunks)),
                         "emit_ns_p99_of_1000_emit_chunks": round(chunks[int(len(chunks) * 0.99)]),
                         "queue_bytes_max": max_queue[state], "queue_cap": cap, "shed_queue_full": shed,
                         "close_s": round(close_s, 2),
                         "rss_growth_mb_all_three_sinks": round(rss_growth / 1e6, 1)})
        return rows
    finally:
        live.stop()
        stalled.stop()


# ---- main ----------------------------------------------------------------------------------------------

def table(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n== {title}")
    cols = [c for c in rows[0] if c != "backlog_mb_series"]
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in cols]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for r in rows:
        print("  ".join(str(r[c]).ljust(w) for c, w in zip(cols, widths)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller runs (for a smoke check)")
    parser.add_argument("--only", choices=["encode", "burst", "cpu", "dead"], action="append")
    args = parser.parse_args()
    parts = set(args.only or ["encode", "burst", "cpu", "dead"])
    templates = make_templates()
    result: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
                    "switch_interval_s": sys.getswitchinterval(), "load_avg_1m_at_start": os.getloadavg()[0]},
        "record_line_bytes_mean": round(statistics.mean(len(t) for t in templates)),
    }
    print(f"records: ~{result['record_line_bytes_mean']} B lines; {result['machine']}")
    # first, while the heap is fresh, so that RSS growth is not hidden by memory freed by earlier parts
    if "dead" in parts:
        result["dead_backend"] = bench_dead_backend(templates, 20_000 if args.quick else 200_000)
        table("dead backend: emit cost and memory", result["dead_backend"])
    if "encode" in parts:
        result["encode"] = bench_encode(templates, 3 if args.quick else 10)
        table("encode (one core, 5000-record batches, no network)", result["encode"])
    if "burst" in parts:
        result["burst"] = bench_burst(templates, 20_000 if args.quick else 100_000)
        table("burst drained to a local receiver", result["burst"])
    if "cpu" in parts:
        result["cpu_bound_app"] = bench_cpu_bound(templates, 3.0 if args.quick else 8.0)
        table("CPU-bound application thread (backlog = queued MB)", result["cpu_bound_app"])
        for row in result["cpu_bound_app"]:
            print(f"  backlog MB every 0.5 s, {row['variant']}: {row['backlog_mb_series']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    if RESULTS.exists():
        previous = json.loads(RESULTS.read_text())
        previous.update(result)
        result = previous
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
