"""The embedded default: trace records as JSON lines in a local file, rotated by size.

Rotation keeps ``<path>.1`` (newest) … ``<path>.N``, like ``logging.handlers.RotatingFileHandler``, so
``llmmetrics traces`` can read the whole history. One process per file: with several worker processes put
``{pid}`` in the path (``traces-{pid}.jsonl``). A forked child (gunicorn ``--preload`` forks workers from a
master that configured llmmetrics) opens its own ``{pid}`` file; the parent's stays the parent's.

The files hold prompts and answers: they are created with ``trace_file_mode`` (default ``0600``) whatever
the umask, and an existing file or backup found at start is restricted to it, never loosened
(:mod:`llmmetrics.private_files`).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from ..metrics import SelfMetrics
from ..private_files import PRIVATE_FILE_MODE, open_private, restrict_mode
from ..record import Record
from .worker import QueuedSink

__all__ = ["FileSink"]


class FileSink(QueuedSink):
    name = "file"

    def __init__(self, path: str, self_metrics: SelfMetrics, *, max_bytes: int = 50_000_000, backups: int = 5,
                 mode: int = PRIVATE_FILE_MODE) -> None:
        self._template = path
        self._max_file_bytes = max_bytes
        self._backups = backups
        self._mode = mode
        self._opener = functools.partial(open_private, mode=mode)
        self._open_for_this_process()
        super().__init__(self_metrics)

    def _open_for_this_process(self) -> None:
        self._pid = os.getpid()
        self.path = Path(self._template.replace("{pid}", str(self._pid)))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for i in range(1, self._backups + 1):
            backup = self._backup(i)
            if backup.exists():
                restrict_mode(backup, self._mode)
        self._file = open(self.path, "ab", opener=self._opener)

    def _start(self) -> None:
        """(Re)start the worker; in a forked child a ``{pid}`` path becomes the child's own file."""
        if "{pid}" in self._template and self._pid != os.getpid():
            self._file.close()  # the child's copy of the parent's descriptor; the parent's stays open
            self._open_for_this_process()
        super()._start()

    def deliver(self, batch: list[Record]) -> None:
        """Write the batch, rotating between lines whenever the next line would pass max_bytes."""
        size = self._file.tell()
        chunk: list[bytes] = []
        for record in batch:
            n = len(record.line) + 1
            if size + n > self._max_file_bytes and size > 0:
                self._write(chunk)
                chunk = []
                self._rotate()
                size = 0
            chunk.append(record.line)
            size += n
        self._write(chunk)

    def _write(self, lines: list[bytes]) -> None:
        if lines:
            self._file.write(b"\n".join(lines) + b"\n")
            self._file.flush()

    def _rotate(self) -> None:
        self._file.close()
        if self._backups == 0:
            self.path.unlink(missing_ok=True)
        else:
            for i in range(self._backups - 1, 0, -1):
                older = self._backup(i)
                if older.exists():
                    older.replace(self._backup(i + 1))
            self.path.replace(self._backup(1))
        self._file = open(self.path, "ab", opener=self._opener)

    def _backup(self, i: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{i}")

    def _release(self) -> None:
        self._file.close()
