"""How fast does ``llmmetrics traces`` answer over 1,000,000 local trace records on one core?

Generates realistic records (the wrapper's field set and order, ~1 KB each: short prompts, answers of a
few sentences, 3% errors, 1,000 users, feature flags, agent runs with their run records, timestamps over
the last 7 days) into a temporary JSONL file, then times the production questions from docs/traces.md
through the command itself (in-process, output discarded) and prints a table. Results go to
``benchmarks/results/traces_query.json``.

    python benchmarks/traces_query.py                 # 1,000,000 records
    python benchmarks/traces_query.py --records 100000 --keep /tmp/traces.jsonl
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import random
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmmetrics.cli import main as llmmetrics_main

MODELS = [("gpt-4o-mini", 0.15, 0.6, 0.55), ("gpt-4o", 2.5, 10.0, 0.25), ("text-embedding-3-small", 0.02, 0.0, 0.1),
          ("o3-mini", 1.1, 4.4, 0.07), ("my-finetune", None, None, 0.03)]
ERRORS = [("RateLimitError", 429, "Rate limit reached for requests"), ("APITimeoutError", None, "Request timed out."),
          ("InternalServerError", 500, "The server had an error while processing your request."),
          ("BadRequestError", 400, "Invalid 'messages': empty array.")]
WORDS = ["invoice", "refund", "order", "shipping", "account", "password", "plan", "upgrade", "cancel", "billing", "address", "delivery", "return", "policy", "discount", "coupon", "warranty", "tracking", "payment", "receipt", "subscription"]


def generate(path: Path, count: int, seed: int = 1) -> tuple[int, list[str]]:
    """Write ``count`` records; return the file size and a few trace ids of agent runs (for the tree query)."""
    rng = random.Random(seed)
    now_ns = time.time_ns()
    span_ns = 7 * 86400 * 10**9
    run_traces: list[str] = []
    written = 0
    buffer: list[bytes] = []
    with open(path, "wb") as out:
        while written < count:
            in_run = rng.random() < 0.05 and count - written >= 4
            trace_id = f"{rng.getrandbits(128):032x}"
            user = f"u-{rng.randrange(1000)}"
            flags = {"new_prompt": rng.random() < 0.3}
            # appended as calls happen: time moves forward through the file (start times jitter a little)
            ts_ns = now_ns - span_ns + written * span_ns // count - rng.randrange(2 * 10**9)
            calls = []
            for step in range(3 if in_run else 1):
                record = call(rng, trace_id, user, flags, ts_ns + step * 900_000_000, in_run)
                calls.append(record)
                buffer.append(orjson.dumps(record))
            if in_run:
                buffer.append(orjson.dumps(run(trace_id, user, flags, ts_ns, calls)))
                if len(run_traces) < 20:
                    run_traces.append(trace_id)
            written = written + len(calls) + (1 if in_run else 0)
            if len(buffer) >= 10_000:
                out.write(b"\n".join(buffer) + b"\n")
                buffer.clear()
        if buffer:
            out.write(b"\n".join(buffer) + b"\n")
    return path.stat().st_size, run_traces


def call(rng: random.Random, trace_id: str, user: str, flags: dict, ts_ns: int, in_run: bool) -> dict:
    model, price_in, price_out, _ = rng.choices(MODELS, weights=[m[3] for m in MODELS])[0]
    embeddings = model.startswith("text-embedding")
    failed = rng.random() < 0.03
    latency = rng.lognormvariate(6.6, 0.7) if not embeddings else rng.lognormvariate(4.5, 0.4)
    inp, out = rng.randint(20, 2000), 0 if embeddings else rng.randint(5, 600)
    cost = None if price_in is None or failed else (inp * price_in + out * (price_out or 0)) / 1e6
    error = None
    if failed:
        kind, code, message = rng.choice(ERRORS)
        error = {"type": kind, "message": message, "status_code": code}
    question = " ".join(rng.choices(WORDS, k=rng.randint(5, 25)))
    answer = " ".join(rng.choices(WORDS, k=rng.randint(20, 60)))
    moment = datetime.fromtimestamp(ts_ns / 1e9, timezone.utc)
    return {
        "kind": "call", "call_id": f"{rng.getrandbits(128):032x}", "trace_id": trace_id,
        "span_id": f"{rng.getrandbits(64):016x}", "parent_span_id": "f" * 16 if in_run else None,
        "parent_trace_id": None, "run_name": "support-agent" if in_run else None,
        "timestamp": moment.isoformat(), "ts_ns": ts_ns, "service": "checkout", "env": "prod",
        "provider": "openai", "operation": "embeddings" if embeddings else "chat", "model": model,
        "response_model": model + "-2024-07-18", "stream": False, "status": "error" if failed else "success",
        "latency_ms": latency, "ttft_ms": None,
        "input_tokens": None if failed else inp, "output_tokens": None if failed else out,
        "cached_input_tokens": None if failed else 0, "reasoning_tokens": None if failed else 0,
        "total_tokens": None if failed else inp + out, "cost_usd": cost, "error": error,
        "messages": [{"role": "system", "content": "You are a helpful support assistant."},
                     {"role": "user", "content": question}],
        "kwargs": {"temperature": 0.2}, "output": None if failed or embeddings else answer,
        "finish_reason": None if failed else "stop", "tool_calls": None,
        "provider_request_id": f"req_{rng.getrandbits(128):032x}", "user_id": user,
        "request_id": f"r-{rng.getrandbits(48):012x}", "feature_flags": flags, "context": {"tenant": user[-1]},
        "sampled": "error" if failed else "ratio", "truncated": False,
    }


def run(trace_id: str, user: str, flags: dict, ts_ns: int, calls: list[dict]) -> dict:
    failing = next((c for c in calls if c["status"] == "error"), None)
    return {
        "kind": "run", "run_name": "support-agent", "trace_id": trace_id, "span_id": "f" * 16,
        "parent_span_id": None, "timestamp": calls[0]["timestamp"], "ts_ns": ts_ns, "service": "checkout",
        "env": "prod", "status": "error" if failing else "success",
        "latency_ms": sum(c["latency_ms"] for c in calls) + 50, "model_wait_ms": sum(c["latency_ms"] for c in calls),
        "steps": [{"call_id": c["call_id"], "span_id": c["span_id"], "operation": c["operation"], "model": c["model"],
                   "status": c["status"], "latency_ms": c["latency_ms"], "input_tokens": c["input_tokens"],
                   "output_tokens": c["output_tokens"], "cost_usd": c["cost_usd"],
                   "error_type": (c["error"] or {}).get("type")} for c in calls],
        "step_count": len(calls), "input_tokens": sum(c["input_tokens"] or 0 for c in calls),
        "output_tokens": sum(c["output_tokens"] or 0 for c in calls), "cached_input_tokens": 0, "reasoning_tokens": 0,
        "cost_usd": sum(c["cost_usd"] or 0 for c in calls), "unpriced_steps": sum(c["cost_usd"] is None for c in calls),
        "error": {"type": failing["error"]["type"], "message": failing["error"]["message"]} if failing else None,
        "failed_call_id": failing["call_id"] if failing else None, "user_id": user, "request_id": None,
        "feature_flags": flags, "context": {},
    }


def first_run_traces(path: Path) -> list[str]:
    """Trace ids of the first agent runs in a generated file (for the tree query when reusing one)."""
    with open(path, "rb") as lines:
        for line in lines:
            if line.startswith(b'{"kind":"run"'):
                return [orjson.loads(line)["trace_id"]]
    raise SystemExit(f"{path} holds no run record: generate it with --keep")


def parse_everything(path: Path) -> tuple[float, float, int]:
    """The floor for a query that must look at every record: read the file and parse each line."""
    started, cpu_started = time.perf_counter(), time.process_time()
    count = 0
    with open(path, "rb") as lines:
        for line in lines:
            orjson.loads(line)
            count += 1
    return time.perf_counter() - started, time.process_time() - cpu_started, count


def time_query(path: Path, args: list[str]) -> tuple[float, float, int]:
    """Wall and CPU seconds for one run of the command (output discarded), and its output line count.

    CPU time is this process's own: on a shared machine it is the fair measure of one core's work.
    """
    out, err = io.StringIO(), io.StringIO()
    started, cpu_started = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = llmmetrics_main(["traces", "--file", str(path), *args])
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    if code != 0:
        raise SystemExit(f"query {args} failed: {err.getvalue()}")
    return elapsed, cpu, len(out.getvalue().splitlines())


def main_benchmark() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--keep", metavar="PATH", help="write the records here and keep them (default: a temp file)")
    parser.add_argument("--reuse", metavar="PATH", help="time the queries over a file an earlier --keep wrote")
    parser.add_argument("--repeat", type=int, default=2, help="runs per query; the best is reported")
    options = parser.parse_args()
    for var in [v for v in os.environ if v.startswith("LLMMETRICS_")]:
        del os.environ[var]

    with tempfile.TemporaryDirectory() as tmp:
        if options.reuse:
            path = Path(options.reuse)
            size, run_traces = path.stat().st_size, first_run_traces(path)
            with open(path, "rb") as lines:
                options.records = sum(1 for _ in lines)
            print(f"reusing {options.records:,} records ({size / 1e6:,.0f} MB) from {path}")
        else:
            path = Path(options.keep) if options.keep else Path(tmp) / "traces.jsonl"
            started = time.perf_counter()
            size, run_traces = generate(path, options.records)
            print(f"generated {options.records:,} records ({size / 1e6:,.0f} MB) in {time.perf_counter() - started:.1f} s")
        queries = [
            ("errors of a model in the last 6 h, slowest first",
             ["--status", "error", "--model", "gpt-4o-mini", "--since", "6h", "--sort", "-latency", "--limit", "20"]),
            ("slow calls over 3 s under $0.10", ["--min-latency", "3s", "--max-cost", "0.10", "--limit", "20"]),
            ("one agent run as a tree", ["--trace-id", run_traces[0]]),
            ("a user's cost per feature flag, last day",
             ["--user", "u-42", "--since", "1d", "--sum", "cost_usd", "--by", "feature_flags.new_prompt"]),
            ("free text", ["--grep", "warranty warranty", "--limit", "20"]),
            ("rate limits in the last hour", ["--error-type", "RateLimitError", "--since", "1h"]),
            ("newest 50 calls, no filter", []),
            ("most expensive calls of the week", ["--sort", "-cost", "--limit", "20"]),
            ("cost per model, all records", ["--sum", "cost", "--by", "model"]),
        ]
        rows = []
        wall, cpu, count = min(parse_everything(path) for _ in range(options.repeat))
        rows.append({"query": "baseline: read and orjson-parse every line, no command", "args": [],
                     "wall_seconds": round(wall, 3), "cpu_seconds": round(cpu, 3), "output_lines": count})
        print(f"  {wall:6.2f} s wall  {cpu:6.2f} s cpu  {count:7d} records parsed (baseline)", flush=True)
        for title, args in queries:
            wall, cpu, lines = min(time_query(path, args) for _ in range(options.repeat))
            rows.append({"query": title, "args": args, "wall_seconds": round(wall, 3), "cpu_seconds": round(cpu, 3),
                         "output_lines": lines})
            print(f"  {wall:6.2f} s wall  {cpu:6.2f} s cpu  {lines:5d} lines  {title}", flush=True)
        load = os.getloadavg()[0]

    width = max(len(r["query"]) for r in rows)
    print(f"\n{'query':{width}}  {'wall s':>7}  {'cpu s':>7}  {'lines':>6}")
    for r in rows:
        print(f"{r['query']:{width}}  {r['wall_seconds']:7.2f}  {r['cpu_seconds']:7.2f}  {r['output_lines']:6d}")
    print(f"(load average at the end: {load:.1f} on {os.cpu_count()} cpus)")
    results = {
        "benchmark": "traces_query",
        "records": options.records,
        "file_bytes": size,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "single_process": True,
        "load_average_1m_at_end": round(load, 2),
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "queries": rows,
    }
    target = Path(__file__).resolve().parent / "results" / "traces_query.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {target}")


if __name__ == "__main__":
    main_benchmark()
