"""Memory: RSS over a long run of instrumented calls, and Prometheus series under a flood of model names.

Run: ``python benchmarks/memory.py [--calls N] [--quick] [--models M]``. Prints tables and writes
``benchmarks/results/memory.json``.

1. RSS growth: ``--calls`` (default 1,000,000) instrumented sync chat calls through the in-process transport
   with the production setup (metrics, trace records at 100 %, rotating JSONL file, Loki sink pushing to a
   local receiver process), RSS sampled every ``--calls``/10 calls. It must be flat once warm: the table
   gives the growth from the first sample after warm-up to the last, and per 100,000 calls. The 1,000,000
   call default takes about 45 minutes on the 2-core development machine (~400 calls/s); ``--quick`` runs
   50,000.
2. Cardinality: ``--models`` (default 10,000) calls, each with a distinct model string. The number of
   ``llm_requests_total`` series must stay at the cap (``max_models``, 50 by default, plus ``other``).
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from dead_backend import rss_bytes  # noqa: E402
from overhead import Receiver, configure  # noqa: E402

import llmmetrics  # noqa: E402


def series_count(registry: Any, family: str) -> int:
    """Distinct label sets of one metric family in the registry (its ``_total``/``_bucket`` … samples deduped)."""
    seen = set()
    for metric in registry.collect():
        if metric.name == family:
            for sample in metric.samples:
                labels = {k: v for k, v in sample.labels.items() if k not in ("le",)}
                seen.add(tuple(sorted(labels.items())))
    return len(seen)


def model_labels(registry: Any) -> set[str]:
    return {s.labels["model"] for m in registry.collect() if m.name == "llm_requests" for s in m.samples
            if "model" in s.labels}


def rss_growth(calls: int, trace_dir: str, receiver_url: str | None) -> dict[str, Any]:
    rt = configure(trace_dir, receiver_url)
    client = llmmetrics.instrument(common.inprocess_client())
    every = max(1, calls // 10)
    warm = min(every, 20_000)
    for _ in range(warm):
        common.chat(client)
    rt.flush(30.0)
    gc.collect()
    samples = [{"calls": 0, "rss_mb": round(rss_bytes() / 2**20, 2), "seconds": 0.0}]
    started = time.perf_counter()
    done = 0
    while done < calls:
        for _ in range(min(every, calls - done)):
            common.chat(client)
        done += min(every, calls - done)
        samples.append({"calls": done, "rss_mb": round(rss_bytes() / 2**20, 2),
                        "seconds": round(time.perf_counter() - started, 1)})
        print(f"  {done:>9,} calls  RSS {samples[-1]['rss_mb']:8.1f} MB  {samples[-1]['seconds']:7.1f} s", flush=True)
    rt.flush(30.0)
    registry = rt.registry
    emitted = registry.get_sample_value("llmmetrics_records_emitted_total", {"kind": "call"}) or 0.0
    dropped = sum(s.value for m in registry.collect() if m.name == "llmmetrics_records_dropped" for s in m.samples
                  if s.name.endswith("_total"))
    first, last = samples[0]["rss_mb"], samples[-1]["rss_mb"]
    peak = max(s["rss_mb"] for s in samples)
    # growth over the second half: the "flat once warm" criterion, insensitive to one-time allocations early on
    half = samples[len(samples) // 2]
    llmmetrics.shutdown(10.0)
    return {"calls": calls, "warmup_calls": warm, "samples": samples, "rss_first_mb": first, "rss_last_mb": last,
            "rss_peak_mb": peak, "growth_mb": round(last - first, 2),
            "growth_per_100k_calls_mb": round((last - first) / calls * 100_000, 3),
            "second_half_growth_mb": round(last - half["rss_mb"], 2),
            "records_emitted": emitted, "records_dropped": dropped,
            "calls_per_second": round(calls / max(samples[-1]["seconds"], 1e-9))}


def cardinality(models: int, trace_dir: str) -> dict[str, Any]:
    rt = configure(trace_dir, None)
    client = llmmetrics.instrument(common.inprocess_client())
    rss0 = rss_bytes()
    for i in range(models):
        client.chat.completions.create(model=f"ft:gpt-4o-mini:acme:run-{i}", messages=common.MESSAGES)
    rt.flush(30.0)
    registry = rt.registry
    labels = model_labels(registry)
    result = {"distinct_models_called": models, "max_models": rt.config.max_models,
              "llm_requests_total_series": series_count(registry, "llm_requests"),
              "llm_request_duration_seconds_series": series_count(registry, "llm_request_duration_seconds"),
              "model_label_values": len(labels), "other_present": "other" in labels,
              "model_overflow_total": registry.get_sample_value("llmmetrics_model_overflow_total") or 0.0,
              "rss_growth_mb": round((rss_bytes() - rss0) / 2**20, 2)}
    result["at_cap"] = result["model_label_values"] <= rt.config.max_models + 1
    llmmetrics.shutdown(10.0)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=None, help="instrumented calls for RSS (default 1,000,000)")
    parser.add_argument("--quick", action="store_true", help="50,000 calls and 2,000 model names")
    parser.add_argument("--models", type=int, default=None, help="distinct model strings (default 10,000)")
    parser.add_argument("--no-loki", action="store_true", help="without the Loki sink")
    parser.add_argument("--results-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    calls = args.calls or (50_000 if args.quick else 1_000_000)
    models = args.models or (2_000 if args.quick else 10_000)
    started = time.perf_counter()
    machine = common.machine_info()
    trace_dir = tempfile.mkdtemp(prefix="llmmetrics-mem-")
    receiver = None if args.no_loki else Receiver()
    try:
        print(f"RSS over {calls:,} instrumented calls:", flush=True)
        growth = rss_growth(calls, trace_dir, receiver.url if receiver else None)
        if receiver:
            growth["loki_records_received"] = _received(receiver.url)
    finally:
        if receiver:
            receiver.stop()
    card = cardinality(models, trace_dir)
    result = {"benchmark": "memory", "machine": machine,
              "settings": {"calls": calls, "models": models, "loki_sink": receiver is not None, "file_sink": True,
                           "workload": "sync chat, in-process transport"},
              "rss": growth, "cardinality": card, "seconds": round(time.perf_counter() - started, 1)}
    path = common.write_results("memory", result, args.results_dir)
    common.print_table("RSS over instrumented calls (MB)", [growth],
                       ("calls", "rss_first_mb", "rss_last_mb", "rss_peak_mb", "growth_mb", "second_half_growth_mb",
                        "growth_per_100k_calls_mb", "records_emitted", "records_dropped", "calls_per_second"))
    common.print_table("Prometheus series after distinct model strings", [card],
                       ("distinct_models_called", "max_models", "model_label_values", "llm_requests_total_series",
                        "llm_request_duration_seconds_series", "model_overflow_total", "at_cap", "rss_growth_mb"))
    print(f"\ntook {result['seconds']} s; wrote {path}")
    return 0


def _received(url: str) -> int | None:
    import json
    import urllib.request

    try:
        with urllib.request.urlopen(url + "/stats", timeout=5) as resp:
            return json.loads(resp.read())["records"]
    except OSError:
        return None


if __name__ == "__main__":
    sys.exit(main())
