"""Per-call overhead of llmmetrics: the bare ``openai`` and ``anthropic`` clients vs the same clients after
``instrument()``.

Run: ``python benchmarks/overhead.py [--calls N] [--quick] [--no-loki]``. Prints tables and writes
``benchmarks/results/overhead.json``.

What is measured, all in one process and one run, bare and instrumented interleaved call by call:

1. in-process transport (``httpx2.MockTransport`` answering a fixed realistic body, so the LLM side costs
   nothing): chat, chat stream (62 chunks seen by the caller), responses; sync and async. Wall time per
   call (median, p99, paired difference) and, over alternating blocks of calls that wait for the exporter
   to drain, process CPU per call including the exporter and sink threads.
   ``chat_stream`` is a stream whose caller does not ask for usage: llmmetrics asks for it (and withholds
   the usage chunk), so the client parses one more chunk than bare. ``chat_stream_usage`` is a caller who
   asks for usage: the request goes out unchanged and the difference is llmmetrics' own work.
2. time to the first stream chunk, bare vs instrumented.
3. a real loopback socket to the embedded fake server, run in its own process.
4. a hand-written floor (``chat_floor``): the least a useful wrapper does (a histogram, two counters, a
   deque append), so that llmmetrics' added time can be read as a multiple of it, on any machine.
5. the call path alone (``callpath-stub``): the wrapper ``instrument()`` installs, around a stub that
   returns an already parsed answer, vs the bare stub. Without the openai client's own ~1 ms per call on
   both sides, the added microseconds are measured with far less noise. Pairs run in blocks of 500 with the
   exporter drained in between (untimed): a stub answers a hundred times faster than a real client and the
   exporter thread would otherwise be timed fighting the call path for the GIL. CPU per call still includes
   the exporter thread counting and rendering each record and the sinks writing it.
6. Claude (``loopback-sync``, workloads ``claude``, ``claude_stream``, ``claude_stream_helper``): the real
   ``anthropic`` client against the same fake server process (its Messages API, 60-token answers): plain
   ``messages.create``, ``create(stream=True)`` consumed, and the ``messages.stream()`` helper's
   ``text_stream``. Run after every openai row: importing anthropic imports ``opentelemetry.trace``, which
   turns on the trace-context lookup (next item) for every later call.
7. the trace-context lookup (``callpath-stub``, ``chat_otel_imported`` and ``chat_otel_span``): the stub chat
   call path again once ``opentelemetry.trace`` is imported — with no span current, and inside a recording
   span of the real SDK (when ``opentelemetry-sdk`` is installed) — against the bare stub; compare with the
   ``callpath-stub`` ``chat`` row, measured before OpenTelemetry was imported.

The instrumented side is what a production setup runs: metrics, one trace record per call rendered by the
exporter thread, the JSONL file sink, and the Loki sink pushing to a local receiver process (unless
``--no-loki``), content sampled at 100 %.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

import llmmetrics  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

COLUMNS = ("mode", "workload", "n", "bare_median_us", "median_us", "added_us", "paired_added_us", "added_p99_us",
           "ratio", "bare_cpu_us", "added_cpu_us")


class Receiver:
    """``benchmarks/loki_receiver.py`` in its own process (so it never competes with us for the GIL)."""

    def __init__(self, stall: bool = False) -> None:
        args = [sys.executable, str(common.BENCH_DIR / "loki_receiver.py"), "--port", "0"] + (["--stall"] if stall else [])
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("PORT"):
            self.stop()
            raise RuntimeError(f"loki_receiver did not start (printed {line!r})")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"

    def stop(self) -> None:
        common.stop_process(self.proc)


class FakeServerProcess:
    """The embedded fake LLM server in a child process, answers of exactly 60 tokens (62 stream chunks).

    ``base_url`` is OpenAI's (``…/v1``), ``url`` the server's root (Anthropic's client).
    """

    def __init__(self) -> None:
        code = ("import threading; from llmmetrics.fake import FakeLLMServer; "
                "s = FakeLLMServer(seed=1, answer_tokens=(60, 60)).start(); print(s.base_url, flush=True); "
                "threading.Event().wait()")
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        self.base_url = (self.proc.stdout.readline() if self.proc.stdout else "").strip()
        if not self.base_url.startswith("http"):
            self.stop()
            raise RuntimeError("the fake LLM server did not start")
        self.url = self.base_url.removesuffix("/v1")

    def stop(self) -> None:
        common.stop_process(self.proc)


def configure(trace_dir: str, loki_url: str | None, **extra: Any) -> Any:
    """The instrumented side's runtime: a fresh registry, the file sink, and Loki when a URL is given."""
    return llmmetrics.configure(registry=CollectorRegistry(), trace_file=os.path.join(trace_dir, "traces.jsonl"),
                                sample_success_ratio=1.0, loki_url=loki_url, **extra)


def settle() -> None:
    """Wait until the exporter and sinks have handled every record (charged to the instrumented block)."""
    if not llmmetrics.flush(30.0):
        raise RuntimeError("llmmetrics did not drain within 30 s")


def progress(row: dict[str, Any]) -> None:
    print(f"  {row['mode']:>15} {row['workload']:<12} +{row['paired_added_us']} µs (paired median)", file=sys.stderr,
          flush=True)


def stream_pairs(workload: str, n: int) -> int:
    """A stream costs several plain calls: a quarter of the pairs keeps the run short at the same precision."""
    return max(20, n // 4) if "stream" in workload else n


def measure_sync(mode: str, bare: Any, inst: Any, n: int, warmup: int, cpu_calls: int, cpu_blocks: int,
                 workloads: dict[str, Callable[[Any], Any]]) -> list[dict[str, Any]]:
    rows = []
    for name, fn in workloads.items():
        k = stream_pairs(name, n)
        a, b = common.paired(lambda: fn(bare), lambda: fn(inst), k, min(warmup, k))
        row = {"mode": mode, "workload": name, **common.summarize(a, b)}
        if cpu_blocks:
            row.update(common.cpu_blocks(lambda: fn(bare), lambda: fn(inst), stream_pairs(name, cpu_calls), cpu_blocks,
                                         settle))
        rows.append(row)
        progress(row)
    return rows


def measure_async(mode: str, bare: Any, inst: Any, n: int, warmup: int, cpu_calls: int, cpu_blocks: int
                  ) -> list[dict[str, Any]]:
    rows = []
    for name, fn in common.ASYNC_WORKLOADS.items():
        k = stream_pairs(name, n)
        a, b = common.paired_async(lambda: fn(bare), lambda: fn(inst), k, min(warmup, k))
        row = {"mode": mode, "workload": name, **common.summarize(a, b)}
        if cpu_blocks:
            row.update(common.cpu_blocks_async(lambda: fn(bare), lambda: fn(inst), stream_pairs(name, cpu_calls),
                                               cpu_blocks, settle))
        progress(row)
        rows.append(row)
    return rows


def measure_ttft(bare: Any, inst: Any, n: int, warmup: int) -> dict[str, Any]:
    """Time from ``create()`` to the first chunk in the caller's hands, bare vs instrumented."""
    clock = time.perf_counter_ns

    def first_chunk(client: Any) -> Callable[[], int]:
        def run() -> int:
            t0 = clock()
            stream = client.chat.completions.create(model=common.MODEL, messages=common.MESSAGES, stream=True)
            it = iter(stream)
            next(it)
            t1 = clock()
            for _ in it:
                pass
            return t1 - t0
        return run

    fa, fb = first_chunk(bare), first_chunk(inst)
    for _ in range(warmup):
        fa()
        fb()
    ta, tb = [], []
    for i in range(n):
        if i & 1:
            tb.append(fb())
            ta.append(fa())
        else:
            ta.append(fa())
            tb.append(fb())
    return {"mode": "inprocess-sync", "workload": "chat_stream_ttft", **common.summarize(ta, tb)}


# ---- a reference point: the leanest useful wrapper, written by hand ------------------------------------------

def floor_client() -> Any:
    """A bare client whose chat ``create`` is wrapped by the least a useful instrumentation does.

    Two clock reads, one histogram observation, two counter increments and one deque append holding the
    request and response, in prometheus_client's public API. Its added time, measured in the same run,
    is the yardstick that carries across machines: llmmetrics' added time divided by the floor's.
    """
    import collections
    import types

    from prometheus_client import Counter, Histogram

    registry = CollectorRegistry()
    duration = Histogram("floor_duration_seconds", "d", ["model"], registry=registry).labels(common.MODEL)
    tokens = Counter("floor_tokens", "t", ["model", "kind"], registry=registry)
    input_tokens, output_tokens = tokens.labels(common.MODEL, "input"), tokens.labels(common.MODEL, "output")
    kept: collections.deque[Any] = collections.deque(maxlen=1000)
    client = common.inprocess_client()
    completions = client.chat.completions
    original = type(completions).create
    clock = time.perf_counter

    def create(self: Any, **kwargs: Any) -> Any:
        t0 = clock()
        response = original(self, **kwargs)
        duration.observe(clock() - t0)
        usage = response.usage
        input_tokens.inc(usage.prompt_tokens)
        output_tokens.inc(usage.completion_tokens)
        kept.append((kwargs, response))
        return response

    completions.create = types.MethodType(create, completions)
    return client


def measure_floor(bare: Any, n: int, warmup: int) -> dict[str, Any]:
    """Bare vs the hand-written floor, sync chat, interleaved like every other row."""
    floor = floor_client()
    a, b = common.paired(lambda: common.chat(bare), lambda: common.chat(floor), n, warmup)
    row = {"mode": "inprocess-sync", "workload": "chat_floor", **common.summarize(a, b)}
    progress(row)
    return row


# ---- the call path alone: the wrapper around a stub that returns an already parsed answer ----------------------

class _Headers(dict):
    pass


class _StubStream:
    """Shaped like ``openai.Stream`` where the wrapper touches it: ``_iterator``, ``close``, ``response``."""

    def __init__(self, chunks: list[Any]) -> None:
        self._iterator = iter(chunks)
        self.response = type("R", (), {"headers": _Headers({"x-request-id": "req_bench"})})()

    def __iter__(self) -> Any:
        yield from self._iterator

    def close(self) -> None:
        pass


class _StubClient:
    base_url = "http://bench.invalid/v1"


class _StubResource:
    _client = _StubClient()


def parsed_answers() -> dict[str, Any]:
    """The fixed answers, parsed once into the openai types the real client would return."""
    import json

    from openai.types.chat import ChatCompletion, ChatCompletionChunk
    from openai.types.responses import Response

    frames = [f[len(b"data: "):] for f in common.chat_stream_body(True).split(b"\n\n")
              if f.startswith(b"data: {")]
    return {"chat": ChatCompletion.model_validate(json.loads(common.chat_body())),
            "responses": Response.model_validate(json.loads(common.responses_body())),
            "chunks": [ChatCompletionChunk.model_validate(json.loads(f)) for f in frames]}


def measure_callpath(n: int, warmup: int, cpu_calls: int, cpu_blocks: int) -> list[dict[str, Any]]:
    """Added time per call of the wrapper alone: bare stub vs the same stub wrapped by llmmetrics.

    The stub returns a pre-parsed answer, so the openai client's own ~1 ms (request building, JSON parsing,
    pydantic) is out of both sides and the difference is measured with far less noise. Uses the internal
    ``llmmetrics.instrumentation._traced`` — the very function ``instrument()`` installs.
    """
    from llmmetrics.instrumentation import _traced
    from llmmetrics.providers import openai as adapter

    def _traced_sync(operation: str, stub: Any) -> Any:
        return _traced(adapter, next(t for t in adapter.TARGETS if t.operation == operation), stub, False)

    answers = parsed_answers()
    resource = _StubResource()
    kw_chat = {"model": common.MODEL, "messages": common.MESSAGES, "temperature": 0.2, "max_tokens": 256}
    kw_stream = {"model": common.MODEL, "messages": common.MESSAGES, "stream": True}
    kw_resp = {"model": common.MODEL, "input": "My order 1234 has not arrived yet.", "instructions": "Be concise."}

    def stub_chat(self: Any, **kwargs: Any) -> Any:
        return answers["chat"]

    def stub_stream(self: Any, **kwargs: Any) -> Any:
        chunks = answers["chunks"] if "stream_options" in kwargs else answers["chunks"][:-1]
        return _StubStream(chunks)

    def stub_responses(self: Any, **kwargs: Any) -> Any:
        return answers["responses"]

    def consume(stream: Any) -> int:
        n_seen = 0
        for _chunk in stream:
            n_seen += 1
        return n_seen

    cases = {
        "chat": (lambda: stub_chat(resource, **kw_chat), (lambda f: lambda: f(resource, **kw_chat))(
            _traced_sync("chat", stub_chat))),
        "chat_stream": (lambda: consume(stub_stream(resource, **kw_stream)), (lambda f: lambda: consume(
            f(resource, **kw_stream)))(_traced_sync("chat", stub_stream))),
        "responses": (lambda: stub_responses(resource, **kw_resp), (lambda f: lambda: f(resource, **kw_resp))(
            _traced_sync("responses", stub_responses))),
    }
    rows = []
    for name, (fa, fb) in cases.items():
        a, b = settled_pairs(fa, fb, n, warmup)
        row = {"mode": "callpath-stub", "workload": name, **common.summarize(a, b)}
        settle()
        row.update(common.cpu_blocks(fa, fb, cpu_calls, cpu_blocks, settle))
        progress(row)
        rows.append(row)
    return rows


def settled_pairs(fa: Callable[[], Any], fb: Callable[[], Any], n: int, warmup: int,
                  block: int = 500) -> tuple[list[int], list[int]]:
    """``common.paired`` in blocks, the exporter drained (untimed) after each.

    Around a stub, calls come a hundred times faster than any real client's, and the exporter thread could
    not keep up: the call path would be timed while fighting that thread for the GIL. Its work is what the
    CPU column charges.
    """
    ta: list[int] = []
    tb: list[int] = []
    for done in range(0, n, block):
        a, b = common.paired(fa, fb, min(block, n - done), warmup if done == 0 else 0)
        ta += a
        tb += b
        settle()
    return ta, tb


# ---- Claude: the anthropic client against the fake server's Messages API ---------------------------------------

CLAUDE = "claude-haiku-4-5"


def claude(client: Any) -> Any:
    return client.messages.create(model=CLAUDE, max_tokens=256, messages=common.MESSAGES[1:],
                                  system=common.MESSAGES[0]["content"])


def claude_stream(client: Any) -> int:
    """Consume a raw event stream; returns the number of events the caller saw."""
    n = 0
    for _event in client.messages.create(model=CLAUDE, max_tokens=256, messages=common.MESSAGES[1:],
                                         system=common.MESSAGES[0]["content"], stream=True):
        n += 1
    return n


def claude_stream_helper(client: Any) -> int:
    """The messages.stream() helper, read through its text_stream; returns the text pieces seen."""
    with client.messages.stream(model=CLAUDE, max_tokens=256, messages=common.MESSAGES[1:],
                                system=common.MESSAGES[0]["content"]) as stream:
        return sum(1 for _text in stream.text_stream)


CLAUDE_WORKLOADS: dict[str, Callable[[Any], Any]] = {
    "claude": claude, "claude_stream": claude_stream, "claude_stream_helper": claude_stream_helper}


def measure_claude(server: FakeServerProcess, n: int, warmup: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Bare vs instrumented anthropic client on the fake server (sync), and the added time per stream chunk."""
    import anthropic

    bare = anthropic.Anthropic(base_url=server.url, api_key="sk-ant-bench", max_retries=0)
    inst = llmmetrics.instrument(anthropic.Anthropic(base_url=server.url, api_key="sk-ant-bench", max_retries=0))
    rows = measure_sync("loopback-sync", bare, inst, n, warmup, 0, 0, CLAUDE_WORKLOADS)
    with bare.messages.stream(model=CLAUDE, max_tokens=256, messages=common.MESSAGES[1:]) as stream:
        deltas = sum(1 for event in stream if event.type == "content_block_delta")
    by = {r["workload"]: r["paired_added_us"] for r in rows}
    summary = {"anthropic": anthropic.__version__, "content_block_deltas": deltas,
               **{f"{name}_marginal_per_chunk_us": round((by[name] - by["claude"]) / deltas, 3)
                  for name in ("claude_stream", "claude_stream_helper")}}
    return rows, summary


# ---- the trace-context lookup once OpenTelemetry is imported -------------------------------------------------------

def measure_trace_context(n: int, warmup: int, cpu_calls: int, cpu_blocks: int) -> list[dict[str, Any]]:
    """The stub chat call path with ``opentelemetry.trace`` imported: no span current, then inside a recording
    span of the real SDK (if installed). Compare with the callpath-stub chat row, measured before."""
    import contextlib

    import opentelemetry.trace  # noqa: F401 - what an application using OpenTelemetry has imported

    from llmmetrics.instrumentation import _traced
    from llmmetrics.providers import openai as adapter

    answer = parsed_answers()["chat"]
    resource = _StubResource()
    kwargs = {"model": common.MODEL, "messages": common.MESSAGES, "temperature": 0.2, "max_tokens": 256}

    def stub_chat(self: Any, **kw: Any) -> Any:
        return answer

    traced = _traced(adapter, adapter.CHAT, stub_chat, False)
    spans: dict[str, Any] = {"chat_otel_imported": contextlib.nullcontext}
    try:
        from opentelemetry.sdk.trace import TracerProvider

        spans["chat_otel_span"] = lambda: TracerProvider().get_tracer("bench").start_as_current_span("request")
    except ImportError:
        print("  (opentelemetry-sdk not installed: no chat_otel_span row)", file=sys.stderr)
    def bare() -> Any:
        return stub_chat(resource, **kwargs)

    def ours() -> Any:
        return traced(resource, **kwargs)

    rows = []
    for name, span in spans.items():
        with span():
            a, b = settled_pairs(bare, ours, n, warmup)
            row = {"mode": "callpath-stub", "workload": name, **common.summarize(a, b)}
            settle()
            row.update(common.cpu_blocks(bare, ours, cpu_calls, cpu_blocks, settle))
        progress(row)
        rows.append(row)
    return rows


def per_chunk(rows: list[dict[str, Any]], chunks: int) -> dict[str, Any]:
    """Added time per stream chunk: (stream added − non-stream chat added) / chunks, and the upper bound.

    ``own_work`` uses the stream whose caller asked for usage (the request goes out unchanged);
    ``with_usage_request`` the stream where llmmetrics asks for usage, so the client parses one more chunk.
    """
    out: dict[str, Any] = {}
    for mode in sorted({r["mode"] for r in rows}):
        by = {r["workload"]: r for r in rows if r["mode"] == mode}
        if "chat" not in by:
            continue
        c = by["chat"]["paired_added_us"]
        entry: dict[str, Any] = {"chunks": chunks}
        for key, workload in (("own_work", "chat_stream_usage"), ("with_usage_request", "chat_stream")):
            if workload in by:
                s = by[workload]["paired_added_us"]
                entry[key] = {"marginal_per_chunk_us": round((s - c) / chunks, 3),
                              "upper_bound_per_chunk_us": round(s / chunks, 3)}
        if mode == "callpath-stub" and "with_usage_request" in entry:
            entry["own_work"] = entry.pop("with_usage_request")  # pre-parsed chunks: nothing extra to parse
        out[mode] = entry
    return out


def trace_context(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The stub chat call path's added time without OpenTelemetry, with it imported, and inside a span."""
    by = {r["workload"]: r["paired_added_us"] for r in rows if r["mode"] == "callpath-stub"}
    out = {name: by[name] for name in ("chat", "chat_otel_imported", "chat_otel_span") if name in by}
    for name in ("chat_otel_imported", "chat_otel_span"):
        if name in out and "chat" in out:
            out[f"{name}_minus_chat"] = round(out[name] - out["chat"], 2)
    return out


def floor_ratio(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """llmmetrics' added time on sync chat over the hand-written floor's, both from this run."""
    by = {r["workload"]: r["paired_added_us"] for r in rows if r["mode"] == "inprocess-sync"}
    ours, floor = by.get("chat"), by.get("chat_floor")
    ratio = round(ours / floor, 2) if ours is not None and floor and floor > 0 else None
    return {"llmmetrics_added_us": ours, "floor_added_us": floor, "x_floor": ratio}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=None,
                        help="interleaved pairs per in-process workload (default 10000, i.e. 20,000 calls; "
                             "streams a quarter)")
    parser.add_argument("--quick", action="store_true", help="a short run (1,000 pairs) to check the setup")
    parser.add_argument("--no-loki", action="store_true", help="instrument without the Loki sink")
    parser.add_argument("--no-loopback", action="store_true", help="skip the loopback socket measurements")
    parser.add_argument("--no-claude", action="store_true",
                        help="openai only: no anthropic rows, no trace-context rows (nothing imports OpenTelemetry)")
    parser.add_argument("--results-dir", type=Path, default=None, help="where to write overhead.json")
    args = parser.parse_args(argv)
    n = args.calls or (1000 if args.quick else 10_000)
    warmup = max(50, min(1000, n // 10))
    cpu_calls = max(20, min(1000, n // 10))
    cpu_blocks = 3 if n < 5000 else 5
    loop_n = max(20, n // 10)

    started = time.perf_counter()
    machine = common.machine_info()
    receiver = None if args.no_loki else Receiver()
    trace_dir = tempfile.mkdtemp(prefix="llmmetrics-bench-")
    rows: list[dict[str, Any]] = []
    try:
        configure(trace_dir, receiver.url if receiver else None)
        bare = common.inprocess_client()
        inst = llmmetrics.instrument(common.inprocess_client())
        small = args.quick or n < 1000
        rows += measure_callpath(n if small else max(n, 20_000), warmup, cpu_calls if small else max(cpu_calls, 2000),
                                 cpu_blocks)
        rows += measure_sync("inprocess-sync", bare, inst, n, warmup, cpu_calls, cpu_blocks,
                             {**common.SYNC_WORKLOADS, "chat_stream_usage": common.chat_stream_usage})
        rows.append(measure_floor(bare, n, warmup))
        abare = common.inprocess_client(is_async=True)
        ainst = llmmetrics.instrument(common.inprocess_client(is_async=True))
        rows += measure_async("inprocess-async", abare, ainst, n, warmup, cpu_calls, cpu_blocks)
        ttft = measure_ttft(bare, inst, max(200, n // 5), warmup)
        claude_summary = None
        if not args.no_loopback:
            server = FakeServerProcess()
            try:
                import openai

                lbare = openai.OpenAI(base_url=server.base_url, api_key="sk-bench", max_retries=0)
                linst = llmmetrics.instrument(openai.OpenAI(base_url=server.base_url, api_key="sk-bench",
                                                            max_retries=0))
                rows += measure_sync("loopback-sync", lbare, linst, loop_n, max(20, loop_n // 10), 0, 0,
                                     common.SYNC_WORKLOADS)
                if not args.no_claude:  # after every openai row: anthropic imports opentelemetry.trace
                    claude_rows, claude_summary = measure_claude(server, loop_n, max(20, loop_n // 10))
                    rows += claude_rows
            finally:
                server.stop()
        if not args.no_claude:
            rows += measure_trace_context(n if small else max(n, 20_000), warmup,
                                          cpu_calls if small else max(cpu_calls, 2000), cpu_blocks)
        settle()
        emitted = _emitted()
    finally:
        llmmetrics.shutdown(10.0)
        if receiver:
            receiver.stop()

    chunks = common.STREAM_CHUNKS + 2
    result = {
        "benchmark": "overhead",
        "machine": machine,
        "settings": {"pairs_inprocess": n, "pairs_inprocess_stream": stream_pairs("chat_stream", n),
                     "pairs_loopback": loop_n, "warmup_pairs": warmup,
                     "cpu_calls_per_block": cpu_calls, "cpu_blocks": cpu_blocks, "stream_chunks_seen": chunks,
                     "loki_sink": receiver is not None, "file_sink": True, "sample_success_ratio": 1.0},
        "rows": rows,
        "ttft": ttft,
        "per_chunk": per_chunk(rows, chunks),
        "floor": floor_ratio(rows),
        "claude": claude_summary,
        "trace_context": trace_context(rows),
        "records_emitted": emitted,
        "seconds": round(time.perf_counter() - started, 1),
    }
    path = common.write_results("overhead", result, args.results_dir)
    common.print_table("Per-call overhead (µs; added = instrumented − bare; CPU includes exporter/sink threads)",
                       rows, COLUMNS)
    common.print_table("Time to first stream chunk (µs)", [ttft],
                       ("workload", "n", "bare_median_us", "median_us", "added_us", "paired_added_us"))
    print("\nAdded per stream chunk (µs):", result["per_chunk"])
    print("Sync chat against the hand-written floor (added µs, same run):", result["floor"])
    print("Claude streams, added per content_block_delta (µs):", result["claude"])
    print("Trace-context lookup, stub chat call path (added µs):", result["trace_context"])
    print(f"records emitted: {emitted}; took {result['seconds']} s; wrote {path}")
    return 0


def _emitted() -> float:
    registry = llmmetrics.runtime().registry
    value = registry.get_sample_value("llmmetrics_records_emitted_total", {"kind": "call"}) if registry else None
    return value or 0.0


if __name__ == "__main__":
    sys.exit(main())
