"""A child process's stdout read line by line as it comes, so a test waits on what it prints, with a bound."""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from collections.abc import Callable

import pytest


class OutputLines:
    """Every line the process printed so far (``lines``), and bounded waits for the next ones."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 120) -> str:
        """The first line from now on that satisfies ``predicate``; fails if the output ends or stalls first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                pytest.fail(f"no such line within {timeout} s; output so far: {self.lines}")
            if line is None:
                pytest.fail(f"the process ended first; output: {self.lines}")
            self.lines.append(line)
            if predicate(line):
                return line

    def next(self, timeout: float = 60) -> str:
        return self.wait_for(lambda line: True, timeout)

    def rest(self, timeout: float = 10) -> list[str]:
        """Every line up to the end of the output (call once the process has exited)."""
        while (line := self._queue.get(timeout=timeout)) is not None:
            self.lines.append(line)
        return self.lines
