"""``llmmetrics demo``: a realistic workload, instrumented, with nothing to install or pay for.

It starts the embedded fake LLM server on 127.0.0.1 (OpenAI's and Anthropic's APIs; realistic latencies,
streaming, a share of 429/5xx/timeouts and broken streams), drives the real ``openai`` client — and, when
``anthropic`` is installed, the real ``anthropic`` client for a share of the runs — through it from several
worker threads — agent runs of several steps for several users with feature flags — serves ``/metrics``,
writes traces to the local JSONL file (and to Loki with ``--loki-url``), and shows a one-line live status.
With ``OPENAI_API_KEY`` set and ``--llm auto`` (the default) it calls the real OpenAI API instead, slowly and
cheaply (Claude only against the fake).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import openai

from .config import Config
from .context import bind_context, trace_run
from .exposition import start_http_server
from .fake import FakeLLMServer, FaultPlan, LatencyModel
from .instrumentation import instrument
from .runtime import configure, shutdown

__all__ = ["add_command", "run_demo"]

USERS = [f"u-{n}" for n in range(1, 9)]
CHAT_MODELS = ("gpt-4o-mini", "gpt-4o-mini", "gpt-4o-mini", "gpt-4.1-mini", "gpt-4o", "o4-mini", "llama-3.1-8b-instruct")
QUESTIONS = (
    "Where is my order #{n}?", "Can I change the delivery address for order #{n}?",
    "Why was I charged twice for order #{n}?", "Summarise the return policy for electronics.",
    "Draft a polite reply to a customer whose parcel #{n} is late.",
)
REAL_API_MODEL = "gpt-4o-mini"
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
    """Counts for the live status line (the authoritative numbers are on /metrics)."""

    def __init__(self) -> None:
        self.calls = 0
        self.errors = 0
        self.runs = 0
        self.lock = threading.Lock()

    def add(self, calls: int, errors: int) -> None:
        with self.lock:
            self.calls += calls
            self.errors += errors
            self.runs += 1


def _agent_run(clients: Clients, rng: random.Random, chat_model: str | None) -> tuple[int, int]:
    """One support-agent run: classify, look up (embeddings), answer (streamed), sometimes a tool step; on
    Claude for a share of the runs."""
    calls = errors = 0
    question = rng.choice(QUESTIONS).format(n=rng.randint(1000, 9999))
    faults = clients.faults
    if clients.claude is not None and rng.random() < CLAUDE_SHARE:
        steps = _claude_steps(clients, rng, question)
        faults += (AttributeError,)  # anthropic's stream helper on a stream without usage (missing_usage)
    else:
        steps = _gpt_steps(clients.gpt, rng, question, chat_model)
    with trace_run("support-agent"):
        for step in steps:
            calls += 1
            try:
                step()
            except faults:  # the fake server's faults: the run goes on, as agents do
                errors += 1
    return calls, errors


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
            calls, errors = _agent_run(client, rng, chat_model)
        stats.add(calls, errors)
        stop.wait(max(interval - (time.monotonic() - started), 0.0))


def run_demo(args: argparse.Namespace) -> int:
    use_real = args.llm == "openai" or (args.llm == "auto" and os.environ.get("OPENAI_API_KEY"))
    overrides: dict[str, Any] = {"service": args.service, "env": args.env}
    if args.trace_file is not None:
        overrides["trace_file"] = args.trace_file or None
    if args.loki_url:
        overrides["loki_url"] = args.loki_url
    config = Config.from_env(**{k: v for k, v in overrides.items() if v is not None})
    configure(config)
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
    http_server, _thread = start_http_server(args.port, addr=args.host)
    print(f"llmmetrics demo: {args.workers} workers calling {target}; metrics on http://{args.host}:{args.port}/metrics; "
          f"traces to {config.trace_file or '(no file)'}" + (f" and {config.loki_url}" if config.loki_url else ""),
          flush=True)
    stats = Stats()
    stop = threading.Event()
    interval = args.workers / args.rate if args.rate > 0 else 0.0
    if use_real:
        interval = max(interval, 5.0)  # a real API costs money: at most one agent run per worker every 5 s
    workers = [threading.Thread(target=_worker, args=(client, stats, stop, interval, args.seed + i if args.seed else i, chat_model),
                                daemon=True, name=f"demo-worker-{i}") for i in range(args.workers)]
    for worker in workers:
        worker.start()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    deadline = time.monotonic() + args.duration if args.duration > 0 else float("inf")
    tty = sys.stdout.isatty()
    last_print = 0.0
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            stop.wait(min(1.0, max(deadline - time.monotonic(), 0.01)))
            now = time.monotonic()
            if not args.quiet and (tty or now - last_print >= 10):
                last_print = now
                line = f"runs {stats.runs}  calls {stats.calls}  errors {stats.errors}"
                print(("\r" + line + "   ") if tty else line, end="" if tty else "\n", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        signal.signal(signal.SIGTERM, previous)
        for worker in workers:
            worker.join(timeout=10)
        http_server.shutdown()
        if server is not None:
            server.stop()
        shutdown()
    print(f"\nllmmetrics demo: done: {stats.runs} runs, {stats.calls} calls, {stats.errors} errors", flush=True)
    return 0


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
    p.add_argument("--quiet", action="store_true", help="no live status line")
    p.set_defaults(func=run_demo)
