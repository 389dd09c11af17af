"""The shared benchmark harness: fixed realistic OpenAI answers, in-process clients, interleaved A/B timing.

Why it is built this way: these machines are small and shared, so absolute timings drift by tens of
percent from one minute to the next. Every comparison is therefore made in one process, in one run, with
the two variants interleaved call by call (A B, then B A, so neither always runs second), after a warm-up;
we report medians, p99 and the ratio to the bare client measured in that same run. Only ratios and
paired differences carry over to another machine.

Two views of the cost, because they differ:

- wall time per call (``paired``): what the caller waits. Per-call ``perf_counter_ns`` around each call.
- CPU per call (``cpu_blocks``): process CPU time (every thread: the exporter and sink workers too) over a
  block of calls of one variant, waited until the background work has drained, divided by calls. Work done
  off the call path still competes for the GIL and the core, so it is a cost even when the caller does not
  wait for it.

This module needs only the standard library, ``openai`` and its HTTP library (``httpx2`` for openai 3.x,
``httpx`` before), because the peer runners import it inside their own virtualenvs.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"

MODEL = "gpt-4o-mini"
MESSAGES = [
    {"role": "system", "content": "You are a concise support assistant for an online shop. Answer in two sentences."},
    {"role": "user", "content": "My order 1234 has not arrived yet. It was shipped last Tuesday. What can I do?"},
]
ANSWER = ("Orders usually arrive within five business days of shipping, so yours may still be on its way. "
          "If it has not arrived by Friday, reply here with the order number and we will open a trace with the "
          "carrier and send a replacement or a refund, whichever you prefer.")
STREAM_CHUNKS = 60  # content deltas per streamed answer (plus role, finish and usage chunks)


# ---- fixed answers -----------------------------------------------------------------------------------------

def _usage_chat() -> dict[str, Any]:
    return {"prompt_tokens": 48, "completion_tokens": 62, "total_tokens": 110,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}


def _base(obj: str) -> dict[str, Any]:
    return {"id": "chatcmpl-BENCH0000000000000000000000", "object": obj, "created": 1795787648,
            "model": "gpt-4o-mini-2024-07-18", "service_tier": "default", "system_fingerprint": "fp_bench0001"}


def chat_body() -> bytes:
    """A non-streamed chat completion as api.openai.com returns it (about 900 bytes)."""
    message = {"role": "assistant", "content": ANSWER, "refusal": None, "annotations": []}
    return json.dumps({**_base("chat.completion"),
                       "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
                       "usage": _usage_chat()}).encode()


def _pieces(n: int) -> list[str]:
    words = ANSWER.split(" ")
    return [(" " if i else "") + words[i % len(words)] for i in range(n)]


def chat_stream_body(include_usage: bool, chunks: int = STREAM_CHUNKS) -> bytes:
    """A streamed chat answer: role chunk, ``chunks`` content deltas, finish chunk, [usage chunk], [DONE]."""
    base = _base("chat.completion.chunk")
    if include_usage:
        base["usage"] = None

    def frame(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + json.dumps({**base, "choices": [choice]}).encode() + b"\n\n"

    frames = [frame({"role": "assistant", "content": "", "refusal": None})]
    frames += [frame({"content": p}) for p in _pieces(chunks)]
    frames.append(frame({}, "stop"))
    if include_usage:
        frames.append(b"data: " + json.dumps({**base, "choices": [], "usage": _usage_chat()}).encode() + b"\n\n")
    frames.append(b"data: [DONE]\n\n")
    return b"".join(frames)


def responses_body() -> bytes:
    """A non-streamed Responses API answer (``POST /v1/responses``)."""
    item = {"id": "msg_BENCH000000000000000000", "type": "message", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": ANSWER, "annotations": [], "logprobs": []}]}
    return json.dumps({
        "id": "resp_BENCH000000000000000000", "object": "response", "created_at": 1795787648, "status": "completed",
        "background": False, "error": None, "incomplete_details": None, "instructions": None,
        "max_output_tokens": None, "model": "gpt-4o-mini-2024-07-18", "output": [item],
        "parallel_tool_calls": True, "previous_response_id": None, "reasoning": {"effort": None, "summary": None},
        "service_tier": "default", "store": True, "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"}, "tool_choice": "auto", "tools": [],
        "top_p": 1.0, "truncation": "disabled",
        "usage": {"input_tokens": 48, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                  "output_tokens": 62, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 110},
        "user": None, "metadata": {},
    }).encode()


# ---- in-process clients --------------------------------------------------------------------------------------

def http_module() -> Any:
    """The HTTP library the installed openai is built on: ``httpx2`` for openai 3.x, ``httpx`` before."""
    import openai

    if int(openai.__version__.split(".")[0]) >= 3:
        import httpx2

        return httpx2
    import httpx

    return httpx


class FixedAnswers:
    """Answers every request with a fixed body for its endpoint; the LLM side costs (almost) nothing."""

    def __init__(self, stream_chunks: int = STREAM_CHUNKS) -> None:
        self.chat = chat_body()
        self.responses = responses_body()
        self.stream = chat_stream_body(False, stream_chunks)
        self.stream_usage = chat_stream_body(True, stream_chunks)
        self.requests = 0

    def pick(self, path: str, body: bytes) -> tuple[bytes, str]:
        self.requests += 1
        if path.endswith("/responses"):
            return self.responses, "application/json"
        if b'"stream": true' in body or b'"stream":true' in body:
            usage = b'"include_usage": true' in body or b'"include_usage":true' in body
            return (self.stream_usage if usage else self.stream), "text/event-stream"
        return self.chat, "application/json"

    def sync_handler(self, http: Any) -> Callable[[Any], Any]:
        def handle(request: Any) -> Any:
            body, ctype = self.pick(request.url.path, request.content)
            return http.Response(200, content=body, headers={"content-type": ctype, "x-request-id": "req_bench"})
        return handle

    def async_handler(self, http: Any) -> Callable[[Any], Awaitable[Any]]:
        def respond(request: Any) -> Any:
            body, ctype = self.pick(request.url.path, request.content)
            return http.Response(200, content=body, headers={"content-type": ctype, "x-request-id": "req_bench"})

        async def handle(request: Any) -> Any:
            await request.aread()
            return respond(request)
        return handle


def inprocess_client(answers: FixedAnswers | None = None, *, is_async: bool = False) -> Any:
    """A real ``openai`` client whose transport answers in-process (no socket, no server)."""
    import openai

    http = http_module()
    answers = answers or FixedAnswers()
    if is_async:
        transport = http.MockTransport(answers.async_handler(http))
        return openai.AsyncOpenAI(base_url="http://bench.invalid/v1", api_key="sk-bench", max_retries=0,
                                  http_client=http.AsyncClient(transport=transport))
    transport = http.MockTransport(answers.sync_handler(http))
    return openai.OpenAI(base_url="http://bench.invalid/v1", api_key="sk-bench", max_retries=0,
                         http_client=http.Client(transport=transport))


# ---- workloads: one call each, consumed the way an application consumes it --------------------------------------

def chat(client: Any) -> Any:
    return client.chat.completions.create(model=MODEL, messages=MESSAGES, temperature=0.2, max_tokens=256)


def chat_stream(client: Any) -> int:
    """Consume a streamed chat answer; returns the number of chunks the caller saw."""
    n = 0
    for _chunk in client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True):
        n += 1
    return n


def chat_stream_usage(client: Any) -> int:
    """A stream whose caller asks for usage itself: llmmetrics then sends the request unchanged."""
    n = 0
    for _chunk in client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True,
                                                 stream_options={"include_usage": True}):
        n += 1
    return n


def responses(client: Any) -> Any:
    return client.responses.create(model=MODEL, input="My order 1234 has not arrived yet. What can I do?",
                                   instructions="You are a concise support assistant.")


async def achat(client: Any) -> Any:
    return await client.chat.completions.create(model=MODEL, messages=MESSAGES, temperature=0.2, max_tokens=256)


async def achat_stream(client: Any) -> int:
    n = 0
    async for _chunk in await client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True):
        n += 1
    return n


async def aresponses(client: Any) -> Any:
    return await client.responses.create(model=MODEL, input="My order 1234 has not arrived yet. What can I do?",
                                         instructions="You are a concise support assistant.")


SYNC_WORKLOADS: dict[str, Callable[[Any], Any]] = {"chat": chat, "chat_stream": chat_stream, "responses": responses}
ASYNC_WORKLOADS: dict[str, Callable[[Any], Awaitable[Any]]] = {
    "chat": achat, "chat_stream": achat_stream, "responses": aresponses}


# ---- statistics ------------------------------------------------------------------------------------------------

def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100.0 * (len(ordered) - 1))))
    return ordered[k]


def summarize(a_ns: Sequence[int], b_ns: Sequence[int]) -> dict[str, float]:
    """Medians/p99 of both variants in µs, the added time of B over A, and B's ratio to A.

    ``added_us`` is the difference of medians; ``paired_added_us`` the median of per-pair differences
    (pairs ran back to back, so slow spells of the machine hit both halves of a pair).
    """
    a = [x / 1000.0 for x in a_ns]
    b = [x / 1000.0 for x in b_ns]
    med_a, med_b = statistics.median(a), statistics.median(b)
    p99_a, p99_b = percentile(a, 99), percentile(b, 99)
    diffs = [y - x for x, y in zip(a, b)]
    return {
        "n": len(a),
        "bare_median_us": round(med_a, 2),
        "median_us": round(med_b, 2),
        "added_us": round(med_b - med_a, 2),
        "paired_added_us": round(statistics.median(diffs), 2),
        "bare_p99_us": round(p99_a, 2),
        "p99_us": round(p99_b, 2),
        "added_p99_us": round(p99_b - p99_a, 2),
        "ratio": round(med_b / med_a, 4) if med_a else float("nan"),
    }


# ---- timing ------------------------------------------------------------------------------------------------------

def paired(fa: Callable[[], Any], fb: Callable[[], Any], n: int, warmup: int) -> tuple[list[int], list[int]]:
    """Per-call wall times (ns) of ``fa`` and ``fb``, interleaved A B / B A, after ``warmup`` pairs."""
    clock = time.perf_counter_ns
    for _ in range(warmup):
        fa()
        fb()
    gc.collect()
    ta: list[int] = []
    tb: list[int] = []
    for i in range(n):
        if i & 1:
            t0 = clock(); fb(); t1 = clock(); fa(); t2 = clock()  # noqa: E702
            tb.append(t1 - t0)
            ta.append(t2 - t1)
        else:
            t0 = clock(); fa(); t1 = clock(); fb(); t2 = clock()  # noqa: E702
            ta.append(t1 - t0)
            tb.append(t2 - t1)
    return ta, tb


def paired_async(fa: Callable[[], Awaitable[Any]], fb: Callable[[], Awaitable[Any]], n: int,
                 warmup: int) -> tuple[list[int], list[int]]:
    """``paired`` for coroutines, inside one event loop."""
    clock = time.perf_counter_ns

    async def run() -> tuple[list[int], list[int]]:
        for _ in range(warmup):
            await fa()
            await fb()
        gc.collect()
        ta: list[int] = []
        tb: list[int] = []
        for i in range(n):
            first, second = (fb, fa) if i & 1 else (fa, fb)
            t0 = clock()
            await first()
            t1 = clock()
            await second()
            t2 = clock()
            if i & 1:
                tb.append(t1 - t0)
                ta.append(t2 - t1)
            else:
                ta.append(t1 - t0)
                tb.append(t2 - t1)
        return ta, tb

    return asyncio.run(run())


def cpu_blocks(fa: Callable[[], Any], fb: Callable[[], Any], calls: int, blocks: int,
               settle_b: Callable[[], Any] | None = None) -> dict[str, float]:
    """Process CPU (all threads) and wall time per call of A and B, over alternating blocks of ``calls``.

    After each B block ``settle_b`` (e.g. a flush of the exporter) runs inside the measured window, so the
    background work B caused is charged to B. Medians over ``blocks`` blocks of each.
    """
    cpu_a: list[float] = []
    cpu_b: list[float] = []
    wall_a: list[float] = []
    wall_b: list[float] = []
    for i in range(2 * blocks):
        is_b = (i % 2 == 1) if (i // 2) % 2 == 0 else (i % 2 == 0)  # A B B A A B …: no fixed order
        fn = fb if is_b else fa
        gc.collect()
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(calls):
            fn()
        if is_b and settle_b is not None:
            settle_b()
        c1, w1 = time.process_time(), time.perf_counter()
        (cpu_b if is_b else cpu_a).append((c1 - c0) / calls * 1e6)
        (wall_b if is_b else wall_a).append((w1 - w0) / calls * 1e6)
    ca, cb = statistics.median(cpu_a), statistics.median(cpu_b)
    wa, wb = statistics.median(wall_a), statistics.median(wall_b)
    return {"calls_per_block": calls, "blocks": blocks,
            "bare_cpu_us": round(ca, 2), "cpu_us": round(cb, 2), "added_cpu_us": round(cb - ca, 2),
            "bare_block_wall_us": round(wa, 2), "block_wall_us": round(wb, 2), "added_block_wall_us": round(wb - wa, 2)}


def cpu_blocks_async(fa: Callable[[], Awaitable[Any]], fb: Callable[[], Awaitable[Any]], calls: int, blocks: int,
                     settle_b: Callable[[], Any] | None = None) -> dict[str, float]:
    """``cpu_blocks`` for coroutines: each block runs in one event loop."""
    loop = asyncio.new_event_loop()
    try:
        def runner(coro_fn: Callable[[], Awaitable[Any]]) -> Callable[[], Any]:
            async def many() -> None:
                for _ in range(calls):
                    await coro_fn()
            return lambda: loop.run_until_complete(many())

        ra, rb = runner(fa), runner(fb)
        block = cpu_blocks(ra, rb, 1, blocks, settle_b)
        return {"calls_per_block": calls, "blocks": blocks, **_per_call(block, calls)}
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _per_call(block: dict[str, float], calls: int) -> dict[str, float]:
    keys = ("bare_cpu_us", "cpu_us", "added_cpu_us", "bare_block_wall_us", "block_wall_us", "added_block_wall_us")
    return {k: round(block[k] / calls, 2) for k in keys}


# ---- reporting -------------------------------------------------------------------------------------------------

def machine_info() -> dict[str, Any]:
    """What the figures came from: CPU, cores, load, Python and openai versions."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {"cpu_model": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
                            "implementation": platform.python_implementation(), "platform": platform.platform()}
    try:
        info["load_avg_at_start"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    try:
        import openai

        info["openai"] = openai.__version__
        http = http_module()
        info["http_library"] = f"{http.__name__} {getattr(http, '__version__', '?')}"
    except Exception as exc:  # the harness still reports which openai it failed to load
        info["openai"] = f"unavailable: {exc}"
    info["utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return info


def stop_process(proc: Any, timeout: float = 5.0) -> None:
    """Terminate a helper process (a server the benchmark started), killing it if it does not exit in time."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


def write_results(name: str, data: dict[str, Any], results_dir: Path | None = None) -> Path:
    """Write ``benchmarks/results/<name>.json`` (or under ``results_dir``) and return its path."""
    out_dir = results_dir or RESULTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    return path


def print_table(title: str, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    """A plain aligned text table of ``columns`` from each row."""
    cells = [[str(c) for c in columns]] + [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    print(f"\n{title}")
    for j, row in enumerate(cells):
        print("  ".join(cell.rjust(widths[i]) if j else cell.ljust(widths[i]) for i, cell in enumerate(row)))
        if j == 0:
            print("  ".join("-" * w for w in widths))
    sys.stdout.flush()


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


# ---- peers: each runs in a fresh process, in its own virtualenv -----------------------------------------------

def original_creates() -> dict[str, Any]:
    """The unpatched ``create`` functions, saved before a peer patches the openai classes process-wide."""
    from openai.resources.chat.completions import AsyncCompletions, Completions
    from openai.resources.responses import AsyncResponses, Responses

    return {"chat": Completions.create, "achat": AsyncCompletions.create,
            "responses": Responses.create, "aresponses": AsyncResponses.create}


def unpatched(client: Any, originals: dict[str, Any]) -> Any:
    """A stand-in for ``client`` whose ``create`` calls the saved originals: the bare client, in a process
    where a peer has patched every client. Workloads call it exactly like a client."""
    import functools
    from types import SimpleNamespace

    prefix = "a" if type(client).__name__.startswith("Async") else ""
    chat_create = functools.partial(originals[prefix + "chat"], client.chat.completions)
    responses_create = functools.partial(originals[prefix + "responses"], client.responses)
    return SimpleNamespace(chat=SimpleNamespace(completions=SimpleNamespace(create=chat_create)),
                           responses=SimpleNamespace(create=responses_create))


class AcceptAll:
    """A local HTTP endpoint that answers 200 ``{}`` to everything: where peers export their telemetry.

    Runs in the orchestrator's process (idle while a runner measures), so it takes no GIL from the runner.
    """

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        stats = self.stats = {"requests": 0, "bytes": 0}

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                stats["requests"] += 1
                stats["bytes"] += length
                body = b"{}"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET = do_PUT = _answer  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


PeerPair = tuple[Callable[[], Any], Callable[[], Any]]


def run_peer(name: str, sync_pairs: dict[str, PeerPair], async_pairs: dict[str, PeerPair], *, n: int,
             cpu_calls: int, cpu_block_count: int, settle: Callable[[], Any] | None,
             info: dict[str, Any]) -> dict[str, Any]:
    """Measure a peer against the bare client of its own process: paired wall time and CPU per call.

    A workload whose peer call fails is reported with its error instead of figures (never silently left out).
    """
    rows: list[dict[str, Any]] = []
    for mode, pairs in (("sync", sync_pairs), ("async", async_pairs)):
        for workload, (fa, fb) in pairs.items():
            row: dict[str, Any] = {"mode": mode, "workload": workload}
            # a stream costs ~STREAM_CHUNKS times a plain call: fewer pairs keep every peer's run short
            pairs_n = max(50, n // 4) if "stream" in workload else n
            calls = max(10, cpu_calls // 4) if "stream" in workload else cpu_calls
            warmup = max(20, min(500, pairs_n // 10))
            try:
                if mode == "sync":
                    fa(), fb()
                    a, b = paired(fa, fb, pairs_n, warmup)
                    row.update(summarize(a, b))
                    if cpu_block_count:
                        row.update(cpu_blocks(fa, fb, calls, cpu_block_count, settle))
                else:
                    a, b = paired_async(fa, fb, pairs_n, warmup)
                    row.update(summarize(a, b))
                    if cpu_block_count:
                        row.update(cpu_blocks_async(fa, fb, calls, cpu_block_count, settle))
            except Exception as exc:  # reported in the table and the JSON, so a gap is visible
                row["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
            rows.append(row)
    return {"peer": name, "machine": machine_info(), "info": info, "pairs": n, "rows": rows}


def peer_args(argv: Sequence[str] | None = None) -> Any:
    import argparse

    parser = argparse.ArgumentParser(description="one peer vs the bare client, in this process")
    parser.add_argument("--calls", type=int, default=1000, help="interleaved pairs per workload (streams: a quarter)")
    parser.add_argument("--cpu-calls", type=int, default=300, help="calls per CPU block")
    parser.add_argument("--cpu-blocks", type=int, default=3, help="blocks of each variant for CPU per call")
    parser.add_argument("--collector", default=None, help="URL of an accept-all endpoint for the peer's export")
    return parser.parse_args(argv)


def emit_peer_result(result: dict[str, Any]) -> None:
    """The runner's output: one JSON line prefixed ``RESULT`` (the peers may print their own noise)."""
    print("RESULT " + json.dumps(result), flush=True)
