"""Instructions per call that llmmetrics adds, counted by callgrind: on the caller's thread and on all threads.

Run: ``python benchmarks/instructions.py [--calls N] [--quick] [--code DIR]``. Needs valgrind. Prints a table
and writes ``benchmarks/results/instructions.json``.

Wall-time differences of tens of microseconds on a multi-millisecond stream drown in this machine's noise
(two runs of the same code differ by ±50 µs); an instruction count drifts far less (±15k per plain call,
±100k per 57M-instruction stream: when the exporter thread takes the GIL, and so which memory the next call
reuses, is up to valgrind's thread scheduling). Each figure is the slope
between two child processes, one making ``WARMUP`` calls and one ``WARMUP + N``, run under
``valgrind --tool=callgrind --separate-threads=yes``: the start-up, the imports and the first calls' lazy
set-up cancel, and what is left is N steady calls. The measured calls run with the garbage collector off
(a collection costs millions of instructions wherever it happens to fall; ``memory.py`` covers memory) and
with a fixed ``PYTHONHASHSEED``. The caller's thread is what the user waits for (less
the cache misses instructions do not show: see benchmarks/README.md); all threads adds the exporter and the
file sink, which work off the call path. ``--code DIR`` measures the llmmetrics of another checkout (say,
``git worktree add /tmp/before main``) with this script, for a before/after table in one run.

Workloads, the same answers as ``overhead.py``: the in-process transport's chat, chat stream (62 chunks
seen; llmmetrics asks for usage), chat stream whose caller asks for usage (the same bytes on both sides),
responses and responses stream (68 events); the time-to-first-token path of both streams (``create()``, then
the first chunk, or the first text delta, in the caller's hands, then ``close()``: the close is the only part
that is not before the first token); and Claude's plain and streamed ``messages.create`` through the
same kind of in-process transport (a 60-token answer; 60 ``content_block_delta`` events).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import common

WARMUP = 5
OPENAI = ("chat", "chat_stream", "chat_stream_usage", "responses", "responses_stream", "chat_stream_ttft",
          "responses_stream_ttft")
CLAUDE = ("claude", "claude_stream")
#: for each stream workload: its plain call, and the items the caller sees (the per-item slope's divisor)
STREAMS = {"chat_stream": ("chat", common.STREAM_CHUNKS + 2), "chat_stream_usage": ("chat", common.STREAM_CHUNKS + 2),
           "responses_stream": ("responses", common.STREAM_CHUNKS + 8), "claude_stream": ("claude", 60)}
#: the first-token workloads: their added instructions as a share of the bare client's (the goal: ≤ 1 %)
FIRST_TOKEN = ("chat_stream_ttft", "responses_stream_ttft")
_TOTALS = re.compile(rb"^totals: (\d+)", re.M)


def child(side: str, workload: str, calls: int) -> None:
    """The measured process: WARMUP + ``calls`` calls of one workload, bare or instrumented, then a flush."""
    import llmmetrics
    import overhead

    overhead.configure(tempfile.mkdtemp(prefix="llmmetrics-instr-"), None)
    if workload in CLAUDE:
        client: Any = claude_client()
        run: Callable[[Any], Any] = overhead.CLAUDE_WORKLOADS[workload]
    else:
        client = overhead.client()
        run = {**common.SYNC_WORKLOADS, "chat_stream_usage": common.chat_stream_usage,
               "responses_stream": overhead.responses_stream, "chat_stream_ttft": chat_first_chunk,
               "responses_stream_ttft": responses_first_delta}[workload]
    if side == "instrumented":
        client = llmmetrics.instrument(client)
    for _ in range(WARMUP):
        run(client)
    llmmetrics.flush(30)
    gc.collect()
    gc.disable()  # a collection costs millions of instructions wherever it falls: left out on both sides
    for _ in range(calls):
        run(client)
    llmmetrics.flush(30)
    llmmetrics.shutdown(30)


# the first-token paths: ``overhead`` is imported by the child only (as in ``child``), the same lookup on both sides

def chat_first_chunk(client: Any) -> None:
    """A chat stream up to its first chunk in the caller's hands, then closed."""
    import overhead

    stream = client.chat.completions.create(model=common.MODEL, messages=common.MESSAGES, stream=True)
    overhead.first_chat_chunk(stream)
    stream.close()


def responses_first_delta(client: Any) -> None:
    """A Responses stream up to its first text delta in the caller's hands, then closed."""
    import overhead

    stream = client.responses.create(**overhead.RESPONSES_ARGS, stream=True)
    overhead.first_text_delta(stream)
    stream.close()


def _claude_bodies() -> tuple[bytes, bytes]:
    """A Messages API answer of 60 tokens, plain and as a stream of 60 text deltas, shaped like Anthropic's."""
    usage = {"input_tokens": 36, "output_tokens": 60, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    pieces = [f" word{i}" for i in range(60)]
    message = {"id": "msg_01Bench", "type": "message", "role": "assistant", "model": "claude-haiku-4-5-20251001",
               "content": [{"type": "text", "text": "".join(pieces)}], "stop_reason": "end_turn",
               "stop_sequence": None, "usage": usage}
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        *({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}} for p in pieces),
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": 60}},
        {"type": "message_stop"}]
    stream = b"".join(b"event: " + e["type"].encode() + b"\ndata: " + json.dumps(e).encode() + b"\n\n"
                      for e in events)
    return json.dumps(message).encode(), stream


def claude_client() -> Any:
    """A real anthropic client whose transport answers the fixed bodies above in process (as ``overhead.py``'s
    in-process openai client): no socket, so the count does not depend on how the bytes arrive."""
    import anthropic
    import httpx2

    plain, stream = _claude_bodies()

    def answer(request: Any) -> Any:
        streamed = b'"stream":true' in request.content or b'"stream": true' in request.content
        return httpx2.Response(200, content=stream if streamed else plain, headers={
            "content-type": "text/event-stream" if streamed else "application/json", "request-id": "req_bench"})
    return anthropic.Anthropic(base_url="http://claude.bench", api_key="sk-ant-bench", max_retries=0,
                               http_client=httpx2.Client(transport=httpx2.MockTransport(answer)))


def counted(side: str, workload: str, calls: int, code: Path | None, work: Path) -> tuple[int, int]:
    """(caller's thread, all threads) instructions of one child process."""
    out = work / f"{side}-{workload}-{calls}"
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # the same string hashes, set layouts and probes in every child
    if code is not None:
        env["PYTHONPATH"] = str(code)
    command = ["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}.%p",
               sys.executable, str(Path(__file__).resolve()), "--child", side, workload, str(calls)]
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr.decode(errors='replace')[-3000:]}")
    threads = sorted(work.glob(f"{out.name}.*-*"), key=lambda p: int(p.name.rsplit("-", 1)[1]))
    totals = [int(m[1]) for p in threads if (m := _TOTALS.search(p.read_bytes()))]
    if not totals:
        raise RuntimeError(f"callgrind wrote no per-thread totals for {out.name}")
    return totals[0], sum(totals)


def measure(workloads: list[str], calls: int, code: Path | None, jobs: int) -> list[dict[str, Any]]:
    """Per workload: the bare client's instructions per call and what llmmetrics adds, caller and all threads."""
    work = Path(tempfile.mkdtemp(prefix="llmmetrics-callgrind-"))
    runs = [(side, w, n) for w in workloads for side in ("bare", "instrumented") for n in (0, calls)]
    try:
        with ThreadPoolExecutor(jobs) as pool:
            found = dict(zip(runs, pool.map(lambda r: counted(*r, code if r[0] == "instrumented" else None, work),
                                            runs)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = []
    for w in workloads:
        per = {side: [(found[(side, w, calls)][i] - found[(side, w, 0)][i]) / calls for i in (0, 1)]
               for side in ("bare", "instrumented")}
        rows.append({"workload": w, "calls": calls, "bare_caller": round(per["bare"][0]),
                     "added_caller": round(per["instrumented"][0] - per["bare"][0]),
                     "bare_all": round(per["bare"][1]), "added_all": round(per["instrumented"][1] - per["bare"][1])})
    return rows


def per_item(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A stream's added instructions beyond its plain call's, per item the caller sees (caller's thread)."""
    by = {r["workload"]: r for r in rows}
    return {kind: {"items": items, "plain": plain,
                   "added_caller_per_item": round((by[kind]["added_caller"] - by[plain]["added_caller"]) / items, 1),
                   "x_plain_caller": round(by[kind]["added_caller"] / by[plain]["added_caller"], 2)
                   if by[plain]["added_caller"] > 0 else None}
            for kind, (plain, items) in STREAMS.items() if kind in by and plain in by}


def first_token(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The first-token paths' added instructions, caller's thread, in % of the bare client's."""
    return {r["workload"]: round(100 * r["added_caller"] / r["bare_caller"], 2)
            for r in rows if r["workload"] in FIRST_TOKEN and r["bare_caller"] > 0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=None, help="measured calls per child (default 20)")
    parser.add_argument("--quick", action="store_true", help="3 calls, chat and chat_stream only")
    parser.add_argument("--workloads", nargs="+", choices=OPENAI + CLAUDE, default=None)
    parser.add_argument("--code", type=Path, default=None,
                        help="a checkout whose llmmetrics the instrumented side imports (before/after tables)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="child processes at once")
    parser.add_argument("--results-dir", type=Path, default=None, help="where to write instructions.json")
    parser.add_argument("--child", nargs=3, metavar=("SIDE", "WORKLOAD", "CALLS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        side, workload, calls = args.child
        child(side, workload, int(calls))
        return 0
    if shutil.which("valgrind") is None:
        print("instructions.py needs valgrind (Debian/Ubuntu: apt-get install valgrind)", file=sys.stderr)
        return 2
    calls = args.calls or (3 if args.quick else 20)
    workloads = args.workloads or (["chat", "chat_stream"] if args.quick else list(OPENAI + CLAUDE))
    code = args.code.resolve() if args.code else None
    machine = common.machine_info()
    rows = measure(workloads, calls, code, args.jobs)
    result = {"benchmark": "instructions", "machine": machine,
              "settings": {"calls": calls, "warmup": WARMUP, "code": str(code) if code else None,
                           "sinks": "file", "sample_success_ratio": 1.0},
              "rows": rows, "per_item": per_item(rows), "first_token_pct": first_token(rows)}
    path = common.write_results("instructions", result, args.results_dir)
    common.print_table("Instructions per call (callgrind; added = instrumented − bare)", rows,
                       ("workload", "calls", "bare_caller", "added_caller", "bare_all", "added_all"))
    print("\nStreams beyond their plain call, caller's thread:", result["per_item"])
    print("First-token paths, added in % of the bare client's, caller's thread:", result["first_token_pct"])
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
