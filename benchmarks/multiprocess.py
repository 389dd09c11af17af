"""What sharing exemplars across worker processes costs: the exporter's added work per call, and the time
to serve /metrics with 3 workers and 50 models.

Run: ``python benchmarks/multiprocess.py [--calls N] [--quick] [--results-dir DIR]``. Prints tables and writes
``benchmarks/results/multiprocess.json``.

prometheus_client chooses its multiprocess value class when it is imported, so everything that writes runs
in child processes started with ``PROMETHEUS_MULTIPROC_DIR`` set:

1. **exporter** (one child): the exporter's counting step, ``CallSeries.succeeded`` for a priced chat call
   (requests, duration with its exemplar, tokens, cost with its exemplar), on two series interleaved call by
   call: one whose exemplars are dropped (prometheus_client's multiprocess behaviour before llmmetrics
   shared them) and one whose exemplars go to the shared table. The median of paired differences is the
   store's added cost per call. In the same child and run: the bare client's wall time per call
   (in-process transport), and the whole CPU per instrumented call (call path, exporter, file sink) over
   blocks drained with ``flush`` — so the added cost reads as a share of both.
2. **scrape** (three worker children, then this process): each worker counts ``--calls`` calls on each of
   50 models through the same counting step, latencies drawn log-normally (median 0.8 s) so that each
   series fills several buckets, 5 % failed. Then /metrics is rendered, interleaved, by prometheus_client's
   ``MultiProcessCollector`` (no exemplars) and by llmmetrics' collector (the same merge plus the newest
   exemplar per bucket), in the classic text format and in OpenMetrics: medians and ratios to
   prometheus_client's own.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

WORKERS = 3
MODELS = 50


# ---- children (multiprocess mode) -------------------------------------------------------------------------------

def _exemplars(n: int) -> list[Any]:
    from prometheus_client.samples import Exemplar

    rng = random.Random(5)
    out = []
    for _ in range(n):
        latency = rng.lognormvariate(math.log(0.8), 0.8)
        ids = {"trace_id": f"{rng.getrandbits(128):032x}", "span_id": f"{rng.getrandbits(64):016x}"}
        out.append((latency, Exemplar(ids, latency, time.time()), Exemplar(ids, 0.000131, time.time())))
    return out


def child_exporter(calls: int) -> dict[str, Any]:
    """The exporter's counting step with and without the shared table, and the context it sits in."""
    from prometheus_client import CollectorRegistry

    import llmmetrics
    from llmmetrics.metrics import LLMMetrics

    rt = llmmetrics.configure(registry=CollectorRegistry(), trace_file=os.path.join(os.environ["BENCH_TMP"], "t.jsonl"))
    shared = rt.metrics.series("openai", "gpt-4o-mini", "chat")
    assert rt.metrics.shared_exemplars is not None, "multiprocess mode is not on in the child"
    dropped_metrics = LLMMetrics(CollectorRegistry())
    dropped_metrics.shared_exemplars = None  # what prometheus_client's multiprocess mode does: set_exemplar is a no-op
    dropped = dropped_metrics.series("openai", "gpt-4o-mini", "chat")
    samples = _exemplars(1024)
    tokens = (48, 62, 0, 0, 0, 0)
    state = {"i": 0}

    def step(series: Any) -> Any:
        def count() -> None:
            latency, duration_exemplar, cost_exemplar = samples[state["i"] & 1023]
            state["i"] += 1
            series.succeeded(latency, duration_exemplar, None, None, tokens, 0.000131, cost_exemplar)
        return count

    a, b = common.paired(step(dropped), step(shared), calls, min(2000, calls // 5))
    counting = {"workload": "counting step", **common.summarize(a, b)}

    bare, inst = common.inprocess_client(), llmmetrics.instrument(common.inprocess_client())
    pairs = max(200, calls // 10)
    a, b = common.paired(lambda: common.chat(bare), lambda: common.chat(inst), pairs, min(200, pairs // 5))
    client = {"workload": "chat (in-process transport)", **common.summarize(a, b),
              **common.cpu_blocks(lambda: common.chat(bare), lambda: common.chat(inst), max(50, pairs // 10), 5,
                                  lambda: llmmetrics.flush(30.0))}
    llmmetrics.shutdown(10.0)
    return {"counting": counting, "client": client}


def child_worker(calls_per_model: int, seed: int) -> dict[str, Any]:
    """One worker: ``calls_per_model`` calls on each of 50 models through the exporter's counting step."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.samples import Exemplar

    import llmmetrics

    rt = llmmetrics.configure(registry=CollectorRegistry(), trace_file="")
    rng = random.Random(seed)
    for model in range(MODELS):
        series = rt.metrics.series("openai", f"model-{model:02d}", "chat")
        for _ in range(calls_per_model):
            latency = rng.lognormvariate(math.log(0.8), 0.8)
            ids = {"trace_id": f"{rng.getrandbits(128):032x}", "span_id": f"{rng.getrandbits(64):016x}"}
            at = time.time()
            if rng.random() < 0.05:
                series.failed(latency, Exemplar(ids, latency, at), None, None, "RateLimitError")
            else:
                cost = 0.0001 * rng.random()
                series.succeeded(latency, Exemplar(ids, latency, at), None, None,
                                 (rng.randint(10, 2000), rng.randint(10, 800), 0, 0, 0, 0),
                                 cost, Exemplar(ids, cost, at))
    llmmetrics.shutdown(5.0)
    return {"pid": os.getpid(), "calls": MODELS * calls_per_model}


def _child(role: str, directory: str, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMMETRICS_")}
    env.update({"PROMETHEUS_MULTIPROC_DIR": directory, "BENCH_TMP": directory})
    return subprocess.Popen([sys.executable, __file__, "--child", role, *args], env=env, stdout=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"child exited with {proc.returncode}")
    return json.loads([line for line in out.splitlines() if line.startswith("RESULT ")][-1][7:])


# ---- scrape (this process only reads) ---------------------------------------------------------------------------

def measure_scrape(directory: str, scrapes: int) -> dict[str, Any]:
    """Each round renders /metrics with both collectors, back to back in alternating order, for each format
    (and collects without rendering): medians, p90, the median of per-round differences, and ratios."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import generate_latest as text
    from prometheus_client.multiprocess import MultiProcessCollector
    from prometheus_client.openmetrics.exposition import generate_latest as openmetrics

    from llmmetrics.exemplars import read_exemplars
    from llmmetrics.exposition import ExemplarMultiProcessCollector

    plain, shared = CollectorRegistry(), CollectorRegistry()
    MultiProcessCollector(plain, path=directory)
    ExemplarMultiProcessCollector(directory, shared, exemplar_horizon_seconds=3600)
    formats = {"collect only": lambda r: list(r.collect()), "text": text, "openmetrics": openmetrics}
    rows = []
    for name, render in formats.items():
        render(plain), render(shared)  # warm-up
        a, b = common.paired(lambda render=render: render(plain), lambda render=render: render(shared), scrapes, 0)
        row = common.summarize(a, b)
        rows.append({"format": name, "scrapes": scrapes,
                     "prometheus_client_ms": round(row["bare_median_us"] / 1000, 2),
                     "llmmetrics_ms": round(row["median_us"] / 1000, 2),
                     "paired_added_ms": round(row["paired_added_us"] / 1000, 2), "ratio": row["ratio"],
                     "prometheus_client_bytes": len(render(plain)) if name != "collect only" else None,
                     "llmmetrics_bytes": len(render(shared)) if name != "collect only" else None})
    read_ms = []
    for _ in range(scrapes):
        t0 = time.perf_counter()
        held = read_exemplars(directory, not_before=0.0)
        read_ms.append((time.perf_counter() - t0) * 1000.0)
    files = sorted(Path(directory).iterdir())
    return {"rows": rows, "exemplars_served": len(held), "read_exemplars_median_ms": round(statistics.median(read_ms), 2),
            "files": {p.name: p.stat().st_size for p in files},
            "exemplar_table_bytes_on_disk": sum(p.stat().st_blocks * 512 for p in files if p.suffix == ".mmap")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=None,
                        help="interleaved pairs of the counting step (default 100,000; --quick 5,000); workers "
                             "count a twentieth of it per model")
    parser.add_argument("--quick", action="store_true", help="a short run to check the setup")
    parser.add_argument("--scrapes", type=int, default=None, help="scrapes per variant (default 40; --quick 5)")
    parser.add_argument("--results-dir", type=Path, default=None, help="where to write multiprocess.json")
    parser.add_argument("--child", choices=("exporter", "worker"), help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    calls = args.calls or (5_000 if args.quick else 100_000)
    if args.child == "exporter":
        print("RESULT " + json.dumps(child_exporter(calls)), flush=True)
        return 0
    if args.child == "worker":
        print("RESULT " + json.dumps(child_worker(max(1, calls // 20 // MODELS), args.seed)), flush=True)
        return 0

    started = time.perf_counter()
    machine = common.machine_info()
    scrapes = args.scrapes or (5 if args.quick else 40)
    with tempfile.TemporaryDirectory() as exporter_dir, tempfile.TemporaryDirectory() as scrape_dir:
        print("exporter: counting step with and without the shared exemplar table ...", file=sys.stderr, flush=True)
        exporter = _result(_child("exporter", exporter_dir, "--calls", str(calls)))
        print(f"scrape: {WORKERS} workers x {MODELS} models ...", file=sys.stderr, flush=True)
        workers = [_result(p) for p in [_child("worker", scrape_dir, "--calls", str(calls), "--seed", str(i))
                                        for i in range(WORKERS)]]
        scrape = measure_scrape(scrape_dir, scrapes)

    counting, client = exporter["counting"], exporter["client"]
    added = counting["paired_added_us"]
    summary = {
        "store_added_us_per_call": added,
        "share_of_bare_client": round(added / client["bare_median_us"], 4),
        "share_of_instrumented_cpu_per_call": round(added / client["cpu_us"], 4) if client.get("cpu_us") else None,
        "scrape_added_ms_openmetrics": next(r["paired_added_ms"] for r in scrape["rows"] if r["format"] == "openmetrics"),
        "scrape_ratio_openmetrics": next(r["ratio"] for r in scrape["rows"] if r["format"] == "openmetrics"),
    }
    result = {"benchmark": "multiprocess", "machine": machine,
              "settings": {"counting_pairs": calls, "workers": WORKERS, "models": MODELS,
                           "calls_per_worker": sum(w["calls"] for w in workers) // WORKERS, "scrapes": scrapes},
              "exporter": exporter, "scrape": scrape, "summary": summary,
              "seconds": round(time.perf_counter() - started, 1)}
    path = common.write_results("multiprocess", result, args.results_dir)
    common.print_table("Exporter, multiprocess mode (µs per call; B = exemplars to the shared table)",
                       [counting, client], ("workload", "n", "bare_median_us", "median_us", "paired_added_us",
                                            "added_p99_us", "ratio", "bare_cpu_us", "cpu_us"))
    common.print_table(f"/metrics with {WORKERS} workers x {MODELS} models (ms; both collectors in each round)",
                       scrape["rows"], ("format", "scrapes", "prometheus_client_ms", "llmmetrics_ms", "paired_added_ms",
                                        "ratio", "prometheus_client_bytes", "llmmetrics_bytes"))
    print(f"\nexemplars served: {scrape['exemplars_served']}; reading them: {scrape['read_exemplars_median_ms']} ms; "
          f"exemplar tables on disk: {scrape['exemplar_table_bytes_on_disk']:,} bytes")
    print("summary:", summary)
    print(f"took {result['seconds']} s; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
