"""The embedded default: trace records as JSON lines in a local file, rotated by size.

Rotation keeps ``<path>.1`` (newest) … ``<path>.N``, like ``logging.handlers.RotatingFileHandler``, so
``llmmetrics traces`` can read the whole history. One process per file: with several worker processes put
``{pid}`` in the path (``traces-{pid}.jsonl``).

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
        self.path = Path(path.replace("{pid}", str(os.getpid())))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._max_file_bytes = max_bytes
        self._backups = backups
        self._opener = functools.partial(open_private, mode=mode)
        for i in range(1, backups + 1):
            backup = self._backup(i)
            if backup.exists():
                restrict_mode(backup, mode)
        self._file = open(self.path, "ab", opener=self._opener)
        super().__init__(self_metrics)

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
