"""The ``llmmetrics`` command: ``demo``, ``traces``, ``report``, ``generate`` and ``fake-server``."""

from __future__ import annotations

import argparse
import errno
import socket
import sys
from collections.abc import Sequence

__all__ = ["main", "cannot_listen"]


def build_parser() -> argparse.ArgumentParser:
    from . import __version__, demo
    from .fake import cli as fake_server
    from .report import command as report
    from .stack import generate
    from .traces import cli as traces

    parser = argparse.ArgumentParser(prog="llmmetrics", description="Prometheus metrics and JSON traces for LLM calls.")
    parser.add_argument("--version", action="version", version=f"llmmetrics {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo.add_command(commands)
    traces.add_command(commands)
    report.add_command(commands)
    generate.add_command(commands)
    fake_server.add_command(commands)
    return parser


def cannot_listen(command: str, host: str, port: int, error: OSError, *, port_option: str = "--port",
                  host_option: str = "--host") -> str:
    """What a command says when it cannot listen: which port or address, why, and which option picks another.

    >>> cannot_listen("demo", "127.0.0.1", 8000, OSError(errno.EADDRINUSE, "Address already in use"))
    'llmmetrics demo: port 8000 on 127.0.0.1 is already in use; choose another with --port'
    """
    reason = error.strerror or str(error)
    if error.errno == errno.EADDRINUSE:
        text = f"port {port} on {host} is already in use; choose another with {port_option}"
    elif error.errno == errno.EACCES:
        text = f"port {port} on {host} is not allowed ({reason}); choose another with {port_option}"
    elif isinstance(error, socket.gaierror) or error.errno == errno.EADDRNOTAVAIL:
        text = f"cannot listen on {host} ({reason}); choose another address with {host_option}"
    else:
        text = f"cannot listen on port {port} on {host} ({reason}); choose another with {port_option}"
    return f"llmmetrics {command}: {text}"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
