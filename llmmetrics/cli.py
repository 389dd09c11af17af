"""The ``llmmetrics`` command: ``demo``, ``traces``, ``report``, ``generate`` and ``fake-server``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    from . import demo
    from .fake import cli as fake_server
    from .report import command as report
    from .stack import generate
    from .traces import cli as traces

    parser = argparse.ArgumentParser(prog="llmmetrics", description="Prometheus metrics and JSON traces for LLM calls.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo.add_command(commands)
    traces.add_command(commands)
    report.add_command(commands)
    generate.add_command(commands)
    fake_server.add_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
