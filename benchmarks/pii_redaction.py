"""What personal-data redaction (``redact_pii``) costs per KB of record, next to the secret scrub.

Run: ``python benchmarks/pii_redaction.py [--quick] [--records N] [--passes N]``. Prints a table and writes
``benchmarks/results/pii_redaction.json`` with the machine it ran on.

Records are rendered call records as the pipeline makes them (the wrapper's field set and order: ids,
timestamps, numbers, then content), in three sizes of content: a short chat (~1.4 KB in all), a multi-turn
chat (~6 KB) and a pasted document (~50 KB); each once with clean text and once with personal data in it
(one e-mail, phone, card or IP address per ~400 bytes of content), which is the slow path: every value found
is validated and replaced.

Each variant (the default secret scrub, which is the bar; each kind alone; all five kinds) redacts every
record of a set once per pass; passes of the variants are interleaved (A B C …, then reversed) so that the
machine's slow spells hit them alike, and the median pass is reported as µs per record and µs per KB. A pass
is timed in CPU time of the benchmark's thread (``time.thread_time``), so other work on a shared machine
does not count, though it still cools the caches. Same process, same records, same run: only the ratios
carry over to another machine. A last pair times the whole
``Pipeline.process`` (render, scrub, bound) with and without ``redact_pii`` set to every kind: what the
exporter thread pays per record.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from prometheus_client import CollectorRegistry  # noqa: E402

from common import machine_info, print_table, write_results  # noqa: E402
from llmmetrics.config import DEFAULT_SECRET_PATTERNS, Config  # noqa: E402
from llmmetrics.metrics import SelfMetrics  # noqa: E402
from llmmetrics.pii import KINDS, PIIRedactor  # noqa: E402
from llmmetrics.processors import Pipeline  # noqa: E402

WORDS = ("invoice refund order shipping account password plan upgrade cancel billing address delivery return "
         "policy discount coupon warranty tracking payment receipt subscription the a to of and is for on with "
         "my your please thanks when where why how can I we you it this that").split()
VALUES = ("bob.smith@example.com", "+44 20 7946 0958", "(415) 555-2671", "4111 1111 1111 1111", "203.0.113.7",
          "2001:db8::1", "jürgen.müller@beispiel.de", "01 23 45 67 89", "5555555555554444",
          "fe80::1ff:fe23:4567:890a")
SIZES = {"short chat": 300, "multi-turn chat": 5_000, "pasted document": 50_000}  # content characters


def text(rng: random.Random, chars: int, with_values: bool) -> str:
    words: list[str] = []
    size, next_value = 0, 200 if with_values else None
    while size < chars:
        if next_value is not None and size >= next_value:
            word = rng.choice(VALUES)
            next_value += 400
        else:
            word = rng.choice(WORDS)
        if rng.random() < 0.05:
            word += f" {rng.randrange(1, 2000)}"  # order 1234, 3 items: the digits prose has
        words.append(word)
        size += len(word) + 1
    return " ".join(words)


def record(rng: random.Random, chars: int, with_values: bool) -> dict[str, Any]:
    """A call record with the wrapper's fields, ready for the pipeline (``_context`` merged by it)."""
    turns = max(1, chars // 1_000)
    messages = [{"role": "system", "content": "You are a helpful support assistant."}]
    for i in range(turns):
        messages.append({"role": "user" if i % 2 == 0 else "assistant",
                         "content": text(rng, chars // turns, with_values)})
    ts_ns = 1_796_156_788_000_000_000 + rng.randrange(10**15)
    return {
        "kind": "call", "call_id": f"{rng.getrandbits(128):032x}", "trace_id": f"{rng.getrandbits(128):032x}",
        "span_id": f"{rng.getrandbits(64):016x}", "parent_span_id": None, "parent_trace_id": None, "run_name": None,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts_ns / 1e9)) + ".000285+00:00", "ts_ns": ts_ns,
        "service": "checkout", "env": "prod", "provider": "openai", "operation": "chat", "model": "gpt-4o-mini",
        "response_model": "gpt-4o-mini-2024-07-18", "stream": False, "status": "success",
        "latency_ms": rng.lognormvariate(6.6, 0.7), "ttft_ms": None, "input_tokens": rng.randint(20, 20_000),
        "output_tokens": rng.randint(5, 600), "cached_input_tokens": 0, "reasoning_tokens": 0, "total_tokens": 0,
        "cost_usd": rng.random() / 100, "error": None, "messages": messages, "kwargs": {"temperature": 0.2},
        "output": text(rng, 400, with_values), "finish_reason": "stop", "tool_calls": None,
        "provider_request_id": f"req_{rng.getrandbits(128):032x}", "user_id": None, "request_id": None,
        "feature_flags": {}, "context": {}, "sampled": None, "truncated": False,
        "_context": {"user_id": f"u-{rng.randrange(1000)}", "request_id": f"r-{rng.getrandbits(48):012x}",
                     "feature_flags": {"new_prompt": True}},
    }


def secret_scrub() -> Callable[[bytes], Any]:
    patterns = tuple(re.compile(p.encode()) for p in DEFAULT_SECRET_PATTERNS)

    def scrub(line: bytes) -> bytes:
        for pattern in patterns:
            line = pattern.sub(b"[REDACTED]", line)
        return line
    return scrub


def interleaved(variants: dict[str, Callable[[], Any]], passes: int) -> dict[str, float]:
    """Median CPU seconds per pass of each variant; passes interleaved A B C …, then C B A …"""
    times: dict[str, list[float]] = {name: [] for name in variants}
    order = list(variants)
    for p in range(passes + 1):
        for name in order if p % 2 == 0 else reversed(order):
            started = time.thread_time()
            variants[name]()
            if p:  # the first round warms caches and regex compilation
                times[name].append(time.thread_time() - started)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200, help="records per set (documents: a tenth)")
    parser.add_argument("--passes", type=int, default=21)
    parser.add_argument("--quick", action="store_true", help="a short run that checks the setup")
    parser.add_argument("--results-dir", type=Path)
    options = parser.parse_args()
    if options.quick:
        options.records, options.passes = min(options.records, 20), min(options.passes, 3)
    rng = random.Random(7)
    redactors: dict[str, Callable[[bytes], Any]] = {"secret scrub (bar)": secret_scrub()}
    redactors.update({kind: PIIRedactor((kind,)).redact for kind in KINDS})
    redactors["all five kinds"] = PIIRedactor(KINDS).redact
    probe = Pipeline(Config(), SelfMetrics(CollectorRegistry()))

    rows: list[dict[str, Any]] = []
    for size_name, chars in SIZES.items():
        count = max(2, options.records // 10) if chars >= 50_000 else options.records
        for with_values in (False, True):
            records = [record(rng, chars, with_values) for _ in range(count)]
            lines = [probe.process(r) or b"" for r in records]
            kb = sum(len(line) for line in lines) / 1000
            variants = {name: (lambda f=f: [f(line) for line in lines]) for name, f in redactors.items()}
            medians = interleaved(variants, options.passes)
            bar = medians["secret scrub (bar)"]
            for name, seconds in medians.items():
                rows.append({"records": f"{size_name}, {'with' if with_values else 'no'} personal data",
                             "record_kb": round(kb / count, 1), "variant": name,
                             "us_per_record": round(seconds / count * 1e6, 2),
                             "us_per_kb": round(seconds / kb * 1e6, 2),
                             "x_secret_scrub": round(seconds / bar, 1)})

    pipeline_rows: list[dict[str, Any]] = []
    records = [record(rng, SIZES["short chat"], False) for _ in range(options.records)]
    plain = Pipeline(Config(), SelfMetrics(CollectorRegistry()))
    redacting = Pipeline(Config(redact_pii=KINDS), SelfMetrics(CollectorRegistry()))
    kb = sum(len(plain.process(dict(r)) or b"") for r in records) / 1000  # the pipeline pops "_context": a copy each
    medians = interleaved({"pipeline": lambda: [plain.process(dict(r)) for r in records],
                           "pipeline + redact_pii (all kinds)": lambda: [redacting.process(dict(r)) for r in records]},
                          options.passes)
    for name, seconds in medians.items():
        pipeline_rows.append({"variant": name, "record_kb": round(kb / len(records), 1),
                              "us_per_record": round(seconds / len(records) * 1e6, 2),
                              "us_per_kb": round(seconds / kb * 1e6, 2)})

    print_table("Redaction cost per record (median pass; x = multiple of the secret scrub in the same run)", rows,
                ["records", "record_kb", "variant", "us_per_record", "us_per_kb", "x_secret_scrub"])
    print_table("Whole pipeline per record (render, scrub, bound), short chat records", pipeline_rows,
                ["variant", "record_kb", "us_per_record", "us_per_kb"])
    path = write_results("pii_redaction", {
        "benchmark": "pii_redaction", "machine": machine_info(),
        "settings": {"records": options.records, "passes": options.passes, "sizes": SIZES, "quick": options.quick},
        "rows": rows, "pipeline": pipeline_rows}, options.results_dir)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
