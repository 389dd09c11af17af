"""Servers the tests start as real processes: free loopback ports, waiting on conditions, and cleanup.

Each server runs in a session of its own, so stopping it ends the processes it started too (gunicorn's and
uvicorn's workers), even when the test fails half-way.

Example::

    with Started([binary("prometheus"), ...], tmp_path / "prometheus.log") as prom:
        wait_for("Prometheus to be ready", lambda: ready() or None, deadline, [prom])
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import pytest

__all__ = ["free_port", "wait_for", "Started"]

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Started:
    """A process started in its own session, its output in ``log``; ``stop()`` ends the whole session."""

    def __init__(self, args: Sequence[str], log: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(list(args), stdout=out, stderr=subprocess.STDOUT, env=env,
                                         cwd=cwd or log.parent, stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM to the session (a server shuts its workers down), then SIGKILL to whatever is left."""
        for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                self.proc.poll()  # reap the leader: only live processes should keep the session alive
                if not _session_alive(self.pid):
                    return
                time.sleep(0.05)

    def __enter__(self) -> Started:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _session_alive(sid: int) -> bool:
    try:
        os.killpg(sid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(what: str, check: Callable[[], T | None], deadline: float,
             servers: Sequence[Started | subprocess.Popen[Any]] = (), interval: float = 0.2) -> T:
    """Poll ``check`` until it returns a value; fail with ``what`` at the deadline or if a server exited
    (showing the end of its log when it is a ``Started``)."""
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        for server in servers:
            proc = server.proc if isinstance(server, Started) else server
            if proc.poll() is not None:
                tail = f":\n{server.tail()}" if isinstance(server, Started) else ""
                pytest.fail(f"{proc.args[0]} exited with {proc.returncode} while waiting for {what}{tail}")
        try:
            value = check()
            if value is not None:
                return value
        except (OSError, ValueError, KeyError) as exc:
            last_error = exc
        time.sleep(interval)
    tails = "".join(f"\n--- {s.log.name}\n{s.tail()}" for s in servers if isinstance(s, Started))
    pytest.fail(f"timed out waiting for {what} (last error: {last_error!r}){tails}")
