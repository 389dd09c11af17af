"""The embedded default: trace records as JSON lines in a local file, rotated by size.

Rotation keeps ``<path>.1`` (newest) … ``<path>.N``, like ``logging.handlers.RotatingFileHandler``, so
``llmmetrics traces`` can read the whole history. One process per file: with several worker processes put
``{pid}`` in the path (``traces-{pid}.jsonl``).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..metrics import SelfMetrics
from ..record import Record
from .worker import QueuedSink

__all__ = ["FileSink"]


class FileSink(QueuedSink):
    name = "file"

    def __init__(self, path: str, self_metrics: SelfMetrics, *, max_bytes: int = 50_000_000, backups: int = 5) -> None:
        self.path = Path(path.replace("{pid}", str(os.getpid())))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._max_file_bytes = max_bytes
        self._backups = backups
        self._file = open(self.path, "ab")
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
                older = self.path.with_name(f"{self.path.name}.{i}")
                if older.exists():
                    older.replace(self.path.with_name(f"{self.path.name}.{i + 1}"))
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._file = open(self.path, "ab")

    def _release(self) -> None:
        self._file.close()
