"""``llmmetrics fake-server`` (also ``python -m llmmetrics.fake``): serve the fake LLM until SIGINT or SIGTERM.

It prints the OpenAI base URL (``http://127.0.0.1:8080/v1``; Anthropic's client takes the same without
``/v1``) and installs its own SIGINT and SIGTERM handlers, so it stops cleanly however it was started — also
from a background job whose shell left SIGINT ignored.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from ..cli import cannot_listen
from .server import FakeLLMServer
from .workload import FAULT_NAMES, FaultPlan, LatencyModel

__all__ = ["add_command", "main"]

_PROG = "llmmetrics fake-server"
_EPILOG = f"""\
faults: {", ".join(FAULT_NAMES)}.
--error-rate spreads a share over all of them; --fault NAME=SHARE sets one (repeat it). One request can
force its fault with the header x-fake-fault: NAME (or none).

  llmmetrics fake-server --port 8080 --seed 1 --no-latency
  llmmetrics fake-server --error-rate 0.1 --fault reset=0.02 --ttft 0.5:2 --timeout-seconds 10
"""


def _seconds_range(text: str) -> tuple[float, float]:
    """``0.5`` or ``0.2:0.8`` seconds."""
    low, _, high = text.partition(":")
    try:
        pair = (float(low), float(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SECONDS or LOW:HIGH, got {text!r}") from None
    if not 0 <= pair[0] <= pair[1]:
        raise argparse.ArgumentTypeError(f"expected 0 <= LOW <= HIGH, got {text!r}")
    return pair


def _token_range(text: str) -> tuple[int, int]:
    low, _, high = text.partition(":")
    try:
        return int(low), int(high or low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected TOKENS or LOW:HIGH, got {text!r}") from None


def _fault_share(text: str) -> tuple[str, float]:
    name, sep, share = text.partition("=")
    if not sep or name not in FAULT_NAMES:
        raise argparse.ArgumentTypeError(f"expected NAME=SHARE with NAME one of {', '.join(FAULT_NAMES)}; "
                                         f"got {text!r}")
    try:
        return name, float(share)
    except ValueError:
        raise argparse.ArgumentTypeError(f"the share of {name} must be a number, got {share!r}") from None


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = LatencyModel()
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to bind; 0 picks a free one (default 8080)")
    parser.add_argument("--seed", type=int, default=None, help="seed for reproducible answers, latencies and faults")
    parser.add_argument("--error-rate", type=float, default=0.0, metavar="SHARE",
                        help="share of requests that fail, spread over all faults (default 0)")
    parser.add_argument("--fault", type=_fault_share, action="append", default=[], metavar="NAME=SHARE",
                        help="share of requests that get this fault, instead of what --error-rate gives it")
    parser.add_argument("--timeout-seconds", type=float, default=30.0, metavar="SECONDS",
                        help="how long a 'timeout' or 'stall' fault holds the answer back (default 30)")
    parser.add_argument("--retry-after", type=float, default=1.0, metavar="SECONDS",
                        help="what a 429 tells the client to wait (default 1)")
    parser.add_argument("--no-latency", action="store_true", help="answer at once instead of like a real model")
    parser.add_argument("--ttft", type=_seconds_range, default=defaults.time_to_first_token, metavar="LOW:HIGH",
                        help="time to first token in seconds (default %(default)s)")
    parser.add_argument("--per-token", type=_seconds_range, default=defaults.per_token, metavar="LOW:HIGH",
                        help="seconds per streamed token (default %(default)s)")
    parser.add_argument("--slow-share", type=float, default=defaults.slow_share, metavar="SHARE",
                        help="share of calls that are slow (default %(default)s)")
    parser.add_argument("--slow-extra", type=_seconds_range, default=defaults.slow_extra_seconds, metavar="LOW:HIGH",
                        help="seconds a slow call adds to its first token (default %(default)s)")
    parser.add_argument("--answer-tokens", type=_token_range, default=(20, 80), metavar="LOW:HIGH",
                        help="answer length when a request sets no limit (default %(default)s)")


def add_command(subparsers: Any) -> None:
    """Register ``fake-server`` on the ``llmmetrics`` command's subparsers."""
    parser = subparsers.add_parser("fake-server", help="serve the embedded OpenAI- and Anthropic-compatible fake LLM",
                                   description=__doc__, epilog=_EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(parser)
    parser.set_defaults(func=run)


def _build(args: argparse.Namespace) -> FakeLLMServer:
    overrides = dict(args.fault)
    faults = FaultPlan.with_error_rate(args.error_rate, timeout_seconds=args.timeout_seconds,
                                       retry_after_seconds=args.retry_after, **overrides)
    latency = LatencyModel.none() if args.no_latency else LatencyModel(
        time_to_first_token=args.ttft, per_token=args.per_token, slow_share=args.slow_share,
        slow_extra_seconds=args.slow_extra)
    return FakeLLMServer(host=args.host, port=args.port, seed=args.seed, faults=faults, latency=latency,
                         answer_tokens=args.answer_tokens)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; exit 0 then, 2 on a bad option or a taken port."""
    stop = threading.Event()
    previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            server = _build(args).start()
        except ValueError as exc:
            print(f"{_PROG}: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            print(cannot_listen("fake-server", args.host, args.port, exc), file=sys.stderr)
            return 2
        try:
            print(server.base_url, flush=True)
            stop.wait()
        finally:
            server.stop()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m llmmetrics.fake [options]``: the same as ``llmmetrics fake-server [options]``."""
    parser = argparse.ArgumentParser(prog=_PROG, description=__doc__, epilog=_EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(parser)
    return run(parser.parse_args(argv))
