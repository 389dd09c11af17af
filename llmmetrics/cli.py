"""The ``llmmetrics`` command: ``demo``, ``traces``, ``generate`` and ``fake-server``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _fake_server(args: argparse.Namespace) -> int:
    from .fake_server import main as fake_server_main

    return fake_server_main(args.rest)


def build_parser() -> argparse.ArgumentParser:
    from . import demo
    from .stack import generate
    from .traces import cli as traces

    parser = argparse.ArgumentParser(prog="llmmetrics", description="Prometheus metrics and JSON traces for LLM calls.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo.add_command(commands)
    traces.add_command(commands)
    generate.add_command(commands)
    fake = commands.add_parser("fake-server", help="serve the embedded OpenAI-compatible fake LLM (see --help)",
                               add_help=False)
    fake.add_argument("rest", nargs=argparse.REMAINDER)
    fake.set_defaults(func=_fake_server)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
