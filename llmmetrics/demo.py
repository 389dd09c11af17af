"""``llmmetrics demo``: a realistic workload, instrumented, with nothing to install or pay for.

It starts the embedded fake LLM server on 127.0.0.1 (OpenAI's and Anthropic's APIs; realistic latencies,
streaming, a share of 429/5xx/timeouts and broken streams), drives the real ``openai`` client — and, when
``anthropic`` is installed, the real ``anthropic`` client for a share of the runs — through it from several
worker threads — agent runs of several steps for several users with feature flags — serves ``/metrics``,
writes traces to the local JSONL file (and to Loki with ``--loki-url``), and prints what it sees every few
seconds: calls per second, error share, p95 latency and spend, read from the same metrics Prometheus scrapes.
With ``OPENAI_API_KEY`` set and ``--llm auto`` (the default) it calls the real OpenAI API instead, slowly and
cheaply (Claude only against the fake).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import openai

from .cli import cannot_listen
from .config import Config, ConfigError, default_of
from .context import bind_context, trace_run
from .exposition import start_http_server
from .fake import FakeLLMServer, FaultPlan, LatencyModel
from .instrumentation import instrument
from .metrics import LLMMetrics
from .runtime import Runtime, configure, shutdown
from .traces.render import format_ms, format_usd, plural

__all__ = ["add_command", "run_demo"]

USERS = [f"u-{n}" for n in range(1, 9)]
CHAT_MODELS = ("gpt-4o-mini", "gpt-4o-mini", "gpt-4o-mini", "gpt-4.1-mini", "gpt-4o", "o4-mini", "llama-3.1-8b-instruct")
QUESTIONS = (
    "Where is my order #{n}?", "Can I change the delivery address for order #{n}?",
    "Why was I charged twice for order #{n}?", "Summarise the return policy for electronics.",
    "Draft a polite reply to a customer whose parcel #{n} is late.",
)
REAL_API_MODEL = "gpt-4o-mini"
DEFAULT_TRACE_FILE = default_of("trace_file")
#: How long a graceful stop waits for the workers' calls in flight (a second Ctrl-C does not wait).
STOP_SECONDS = 10.0
CLAUDE_MODELS = ("claude-haiku-4-5", "claude-haiku-4-5", "claude-sonnet-4-5", "claude-opus-4-5")
CLAUDE_SHARE = 0.4  # of the runs, when the Claude client exists
#: A support policy long enough (1,024+ tokens) for prompt caching: Claude runs write, then read, the cache.
POLICY = [{"type": "text", "cache_control": {"type": "ephemeral"},
           "text": "You are a helpful support agent. Policy: " + "Refunds within 30 days; exchanges within 60. " * 120}]


class Clients(NamedTuple):
    """The instrumented clients the workers share, and what their SDKs raise that an agent run survives."""

    gpt: Any
    claude: Any  # None without the anthropic SDK (or against the real OpenAI API)
    faults: tuple[type[BaseException], ...]


def _sdk_faults() -> tuple[type[BaseException], ...]:
    """Every error the fake server's faults make an SDK raise: API errors, JSON cut off, and the raw transport
    errors streams raise (httpx2; httpx under openai 1.x/2.x)."""
    faults: list[type[BaseException]] = [openai.OpenAIError, ValueError]
    for module, name in (("anthropic", "AnthropicError"), ("httpx2", "HTTPError"), ("httpx", "HTTPError")):
        try:
            faults.append(getattr(__import__(module), name))
        except ImportError:
            pass
    return tuple(faults)


def _claude_client(base_url: str) -> Any:
    try:
        import anthropic
    except ImportError:
        return None
    return instrument(anthropic.Anthropic(base_url=base_url, api_key="demo-key", max_retries=0, timeout=5.0))


class Stats:
    """What only the workers know: agent runs done, and the trace id of the latest run with a failed step."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.runs = 0
        self.failed_trace_id: str | None = None
        self.lock = threading.Lock()

    def add(self, trace_id: str, errors: int) -> None:
        with self.lock:
            self.runs += 1
            if errors:
                self.failed_trace_id = trace_id


def _agent_run(clients: Clients, rng: random.Random, chat_model: str | None) -> tuple[str, int]:
    """One support-agent run: classify, look up (embeddings), answer (streamed), sometimes a tool step; on
    Claude for a share of the runs.

    Returns the run's trace id and how many of its steps failed."""
    errors = 0
    question = rng.choice(QUESTIONS).format(n=rng.randint(1000, 9999))
    faults = clients.faults
    if clients.claude is not None and rng.random() < CLAUDE_SHARE:
        steps = _claude_steps(clients, rng, question)
        faults += (AttributeError,)  # anthropic's stream helper on a stream without usage (missing_usage)
    else:
        steps = _gpt_steps(clients.gpt, rng, question, chat_model)
    with trace_run("support-agent") as run:
        for step in steps:
            try:
                step()
            except faults:  # the fake server's faults: the run goes on, as agents do
                errors += 1
    return run.trace_id, errors


def _gpt_steps(client: Any, rng: random.Random, question: str, chat_model: str | None) -> list[Callable[[], Any]]:
    model = chat_model or rng.choice(CHAT_MODELS)
    steps: list[Callable[[], Any]] = [
        lambda: client.chat.completions.create(
            model=model, max_tokens=8,
            messages=[{"role": "system", "content": "Classify the intent in one word."},
                      {"role": "user", "content": question}]),
        lambda: client.embeddings.create(model="text-embedding-3-small", input=[question]),
        lambda: _consume(client.chat.completions.create(
            model=model, stream=True,
            messages=[{"role": "system", "content": "You are a helpful support agent."},
                      {"role": "user", "content": question}])),
    ]
    if rng.random() < 0.3:
        steps.append(lambda: client.responses.create(model=chat_model or "gpt-4.1-mini",
                                                     input=f"Write a ticket title for: {question}"))
    return steps


def _claude_steps(clients: Clients, rng: random.Random, question: str) -> list[Callable[[], Any]]:
    """The same run on Claude: the answer through the messages.stream() helper with the policy cached (cache
    writes, then reads); the embeddings still OpenAI's."""
    claude, model = clients.claude, rng.choice(CLAUDE_MODELS)
    steps: list[Callable[[], Any]] = [
        lambda: claude.messages.create(model=model, max_tokens=8, system="Classify the intent in one word.",
                                       messages=[{"role": "user", "content": question}]),
        lambda: clients.gpt.embeddings.create(model="text-embedding-3-small", input=[question]),
        lambda: _consume_helper(claude.messages.stream(model=model, max_tokens=512, system=POLICY,
                                                       messages=[{"role": "user", "content": question}])),
    ]
    if rng.random() < 0.3:
        steps.append(lambda: _consume(claude.messages.create(
            model=model, max_tokens=64, stream=True,
            messages=[{"role": "user", "content": f"Write a ticket title for: {question}"}])))
    return steps


def _consume(stream: Any) -> None:
    with stream:
        for _ in stream:
            pass


def _consume_helper(manager: Any) -> None:
    with manager as stream:
        for _ in stream.text_stream:
            pass


def _worker(client: Clients, stats: Stats, stop: threading.Event, interval: float, seed: int,
            chat_model: str | None) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        started = time.monotonic()
        user = rng.choice(USERS)
        flags = {"new_prompt": rng.random() < 0.5, "rag_v2": user in USERS[:3]}
        with bind_context(user_id=user, request_id=f"api-{rng.getrandbits(48):012x}", feature_flags=flags):
            trace_id, errors = _agent_run(client, rng, chat_model)
        stats.add(trace_id, errors)
        stop.wait(max(interval - (time.monotonic() - started), 0.0))


class Snapshot:
    """The demo's numbers as the metrics have them (what Prometheus scrapes), read from the runtime's series."""

    def __init__(self, metrics: LLMMetrics, runs: int, at: float) -> None:
        self.runs = runs
        self.at = at
        self.calls = self.errors = 0
        buckets: dict[float, float] = {}
        for family in metrics.requests.collect():
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    self.calls += int(sample.value)
                    if sample.labels.get("status") == "error":
                        self.errors += int(sample.value)
        for family in metrics.duration.collect():
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    bound = float(sample.labels["le"])
                    buckets[bound] = buckets.get(bound, 0.0) + sample.value
        self.p95_seconds = _quantile(0.95, sorted(buckets.items()))
        self.spend = sum(sample.value for family in metrics.cost.collect() for sample in family.samples
                         if sample.name.endswith("_total"))

    def line(self, previous: Snapshot) -> str:
        """``12 s · 40 runs · 148 calls (12.3/s) · 7 errors (4.7%) · p95 1.42 s · spend $0.003100``."""
        elapsed = self.at - previous.at
        rate = (self.calls - previous.calls) / elapsed if elapsed > 0 else 0.0
        return (f"{plural(self.runs, 'run')} · {plural(self.calls, 'call')} ({rate:,.1f}/s) · "
                f"{plural(self.errors, 'error')} ({self._error_share()}) · p95 {self._p95()} · "
                f"spend {format_usd(self.spend)}")

    def summary(self) -> str:
        return (f"{plural(self.runs, 'run')}, {plural(self.calls, 'call')}, {plural(self.errors, 'error')} "
                f"({self._error_share()}), p95 latency {self._p95()}, spend {format_usd(self.spend)}")

    def _error_share(self) -> str:
        return f"{100.0 * self.errors / self.calls:.1f}%" if self.calls else "0.0%"

    def _p95(self) -> str:
        return "-" if self.p95_seconds is None else format_ms(self.p95_seconds * 1000.0)


def _quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """``histogram_quantile`` over cumulative (upper bound, count) pairs: linear within the bucket."""
    if not buckets or buckets[-1][1] == 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == math.inf:
                return lower
            return lower + (bound - lower) * (rank - below) / (count - below) if count > below else bound
        lower, below = bound, count
    return lower


class _Interrupts:
    """Ctrl-C once: stop gracefully (say so); twice: quit now, without a traceback. SIGTERM stops gracefully.

    Installed whatever the signal dispositions inherited from the parent (a background job ignores SIGINT),
    and restored afterwards."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.interrupted = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            for signum, handler in ((signal.SIGINT, self._on_sigint), (signal.SIGTERM, self._on_sigterm)):
                self._previous[signum] = signal.signal(signum, handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.interrupted:
            os.write(sys.stderr.fileno(), b"\nllmmetrics demo: quitting now\n")
            os._exit(130)
        self.interrupted = True
        self.stop.set()

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self.stop.set()


def _next_steps(config: Config, metrics_url: str, failed_trace_id: str | None) -> list[str]:
    """Where to look once the demo is over: the trace commands on what it wrote, and the metrics."""
    if config.trace_file:
        source = "" if config.trace_file == DEFAULT_TRACE_FILE else f" --file {shlex.quote(config.trace_file)}"
    elif config.loki_url:
        source = f" --loki-url {shlex.quote(config.loki_url)}"
    else:
        return [f"  metrics were served on {metrics_url} (run the demo with --trace-file to keep traces)"]
    lines = [
        f"  failed calls, slowest first:  llmmetrics traces{source} --status error --sort -latency",
        f"  spend per model:              llmmetrics traces{source} --sum cost --by model",
    ]
    if failed_trace_id:
        lines.append(f"  an agent run that failed:     llmmetrics traces{source} --trace-id {failed_trace_id}")
    lines.append(f"  metrics (while a demo runs):  curl -H 'Accept: application/openmetrics-text' {metrics_url}")
    return lines


def run_demo(args: argparse.Namespace) -> int:
    started_ns = time.time_ns()  # the report at the end covers this run
    use_real = args.llm == "openai" or (args.llm == "auto" and os.environ.get("OPENAI_API_KEY"))
    overrides: dict[str, Any] = {"service": args.service, "env": args.env}
    if args.trace_file is not None:
        overrides["trace_file"] = args.trace_file or None
    if args.loki_url:
        overrides["loki_url"] = args.loki_url
    try:
        config = Config.from_env(**{k: v for k, v in overrides.items() if v is not None})
        config.check()
    except ConfigError as error:
        print(f"llmmetrics demo: {error}", file=sys.stderr)
        return 2
    stop = threading.Event()
    with _Interrupts(stop) as interrupts:  # from here on Ctrl-C stops the demo, never with a traceback
        try:  # first, so that a taken port changes nothing: no runtime, no trace file, no fake server
            http_server, _thread = start_http_server(args.port, addr=args.host)
        except OSError as error:
            print(cannot_listen("demo", args.host, args.port, error), file=sys.stderr)
            return 2
        try:
            rt = configure(config)
        except ConfigError as error:
            http_server.shutdown()
            print(f"llmmetrics demo: {error}", file=sys.stderr)
            return 2
        stats, metrics_url = _run(args, rt, use_real, stop, interrupts)
        http_server.shutdown()
        rt.flush(5.0)
        final = Snapshot(rt.metrics, stats.runs, time.monotonic())
        shutdown()
    print(f"llmmetrics demo: done after {final.at - stats.started:.0f} s: {final.summary()}", flush=True)
    # --- this run as one offline HTML page (llmmetrics report; says which extra to install if it is missing)
    from .report.command import report_demo_run
    page = report_demo_run(config, started_ns)
    print("Where to look next:\n" + "\n".join([page, *_next_steps(config, metrics_url, stats.failed_trace_id)]),
          flush=True)
    return 0


def _run(args: argparse.Namespace, rt: Runtime, use_real: bool, stop: threading.Event,
         interrupts: _Interrupts) -> tuple[Stats, str]:
    """Start the LLM and the workers, print status lines until stopped, then stop the workers (bounded)."""
    config = rt.config
    server = None
    if use_real:
        client = Clients(instrument(openai.OpenAI(timeout=30.0)), None, _sdk_faults())
        chat_model: str | None = REAL_API_MODEL
        target = "the OpenAI API"
    else:
        faults = FaultPlan.with_error_rate(args.error_rate, timeout_seconds=6.0)
        latency = LatencyModel.none() if args.no_latency else LatencyModel()
        server = FakeLLMServer(latency=latency, faults=faults, seed=args.seed).start()
        client = Clients(instrument(openai.OpenAI(base_url=server.base_url, api_key="demo-key", max_retries=0,
                                                  timeout=5.0)), _claude_client(server.url), _sdk_faults())
        chat_model = None
        target = f"the fake LLM at {server.base_url}" + (" (OpenAI and Anthropic APIs)" if client.claude else "")
    host = f"[{args.host}]" if ":" in args.host else args.host
    metrics_url = f"http://{host}:{args.port}/metrics"
    traces_to = " and ".join(x for x in (config.trace_file, config.loki_url) if x) or "(nowhere: no trace file)"
    print(f"llmmetrics demo: {args.workers} workers calling {target}\n"
          f"  metrics: {metrics_url}\n  traces:  {traces_to}\n"
          f"  Ctrl-C to stop" + (f" (or after {args.duration:g} s)" if args.duration > 0 else ""), flush=True)
    stats = Stats()
    interval = args.workers / args.rate if args.rate > 0 else 0.0
    if use_real:
        interval = max(interval, 5.0)  # a real API costs money: at most one agent run per worker every 5 s
    workers = [threading.Thread(target=_worker, args=(client, stats, stop, interval, args.seed + i if args.seed else i, chat_model),
                                daemon=True, name=f"demo-worker-{i}") for i in range(args.workers)]
    for worker in workers:
        worker.start()
    tty = sys.stdout.isatty()
    every = args.status_interval if args.status_interval is not None else (1.0 if tty else 5.0)
    deadline = stats.started + args.duration if args.duration > 0 else math.inf
    last = Snapshot(rt.metrics, 0, stats.started)
    next_line = stats.started + every
    while not stop.is_set() and time.monotonic() < deadline:
        stop.wait(max(min(next_line, deadline) - time.monotonic(), 0.0))
        now = time.monotonic()
        if not args.quiet and now >= next_line and not stop.is_set():
            snapshot = Snapshot(rt.metrics, stats.runs, now)
            text = f"{now - stats.started:4.0f} s · {snapshot.line(last)}"
            print(("\r" + text + "   ") if tty else text, end="" if tty else "\n", flush=True)
            last, next_line = snapshot, now + every
    if tty and not args.quiet:
        print()
    if interrupts.interrupted:
        print("stopping… (Ctrl-C again to quit now)", flush=True)
    stop.set()
    join_by = time.monotonic() + STOP_SECONDS
    for worker in workers:
        worker.join(timeout=max(join_by - time.monotonic(), 0.0))
    if server is not None:
        server.stop()
    return stats, metrics_url


def add_command(subparsers: Any) -> None:
    p = subparsers.add_parser("demo", help="run an instrumented workload against the embedded fake LLM",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=0.0, help="seconds to run; 0 = until Ctrl-C (default)")
    p.add_argument("--host", default="127.0.0.1", help="address for /metrics (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port for /metrics (default 8000)")
    p.add_argument("--workers", type=int, default=4, help="concurrent agent workers (default 4)")
    p.add_argument("--rate", type=float, default=2.0, help="agent runs per second, all workers together (default 2)")
    p.add_argument("--error-rate", type=float, default=0.05, help="share of fake LLM requests that fail (default 0.05)")
    p.add_argument("--no-latency", action="store_true", help="fake LLM answers at once (load tests)")
    p.add_argument("--seed", type=int, default=0, help="seed for the workload and the fake LLM (0 = random)")
    p.add_argument("--llm", choices=("auto", "fake", "openai"), default="auto",
                   help="auto: the real API if OPENAI_API_KEY is set, else the embedded fake (default)")
    p.add_argument("--trace-file", default=None, help="JSONL trace file (default: LLMMETRICS_TRACE_FILE or llmmetrics-traces.jsonl)")
    p.add_argument("--loki-url", default=None, help="also ship traces to this Loki (e.g. http://localhost:3100)")
    p.add_argument("--service", default=None, help="service name on records and Loki streams")
    p.add_argument("--env", default=None, help="environment name on records and Loki streams")
    p.add_argument("--status-interval", type=float, default=None, metavar="SECONDS",
                   help="seconds between status lines (default: 1 on a terminal, 5 otherwise)")
    p.add_argument("--quiet", action="store_true", help="no status lines while it runs")
    p.set_defaults(func=run_demo)
