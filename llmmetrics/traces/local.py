"""Scan the local JSONL trace files — the rotated backups and the live file — for records matching a query.

The file sink rotates ``traces.jsonl`` into ``traces.jsonl.1`` (newest backup) … ``traces.jsonl.N``
(oldest), so a scan reads ``.N`` down to ``.1`` and then the live file: records come out oldest first.
A line that is not a JSON object (a crash mid-write, a hand edit, a truncated tail) is skipped and
counted, never fatal. Lines are tested with cheap byte checks before parsing, which is what keeps a
million-record scan within seconds on one core.

>>> scan = LocalScan("llmmetrics-traces.jsonl", Query(status="error"))   # doctest: +SKIP
>>> for match in scan: print(match.record["latency_ms"])                 # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from .filters import Query

__all__ = ["LocalScan", "Match", "NoTraceFiles", "trace_files"]

_READ_BUFFER = 1 << 20


class NoTraceFiles(FileNotFoundError):
    """Neither the trace file nor any rotated backup of it exists."""


@dataclasses.dataclass(frozen=True)
class Match:
    """A matching record: the parsed object and its line exactly as stored (``--format json`` prints it)."""

    record: dict[str, Any]
    line: bytes


def trace_files(path: str | os.PathLike[str]) -> list[Path]:
    """The trace files of ``path`` that exist, each family oldest first (``.N`` … ``.1``, then the live file).

    A ``{pid}`` in the name (one file per worker process, as the file sink allows) matches every process's
    family.
    """
    live = Path(path)
    directory = live.parent
    name = re.escape(live.name).replace(re.escape("{pid}"), r"\d+")
    pattern = re.compile(rf"^({name})(?:\.(\d+))?$")
    families: dict[str, list[tuple[int, Path]]] = {}
    if directory.is_dir():
        for entry in directory.iterdir():
            found = pattern.match(entry.name)
            if found and entry.is_file():
                generation = int(found.group(2)) if found.group(2) else 0
                families.setdefault(found.group(1), []).append((generation, entry))
    ordered: list[Path] = []
    for family in sorted(families):
        ordered.extend(p for _, p in sorted(families[family], reverse=True))
    return ordered


class LocalScan:
    """Iterate the records of one trace file family that match a query, counting what was skipped.

    After (or during) iteration, ``files``, ``lines`` and ``malformed`` say what was read, so the command
    can report e.g. "2 malformed lines skipped" instead of failing or losing them silently.
    """

    def __init__(self, path: str | os.PathLike[str], query: Query) -> None:
        self.path = Path(path)
        self.query = query
        self.files: list[Path] = []
        self.lines = 0
        self.malformed = 0
        self.malformed_examples: list[str] = []

    def __iter__(self) -> Iterator[Match]:
        files = trace_files(self.path)
        if not files:
            raise NoTraceFiles(
                f"no trace file at {self.path} (nor rotated {self.path.name}.1 …): pass --file PATH or set "
                "LLMMETRICS_TRACE_FILE to where the application writes its traces"
            )
        compiled = self.query.compile()
        line_may_match = compiled.line_may_match
        predicate = compiled.predicate
        loads = orjson.loads
        decode_error = orjson.JSONDecodeError
        for file in files:
            self.files.append(file)
            try:
                handle = open(file, "rb", buffering=_READ_BUFFER)
            except FileNotFoundError:
                continue  # rotated away between listing and opening: its records are in the next file
            with handle:
                line_number = 0
                for line_number, line in enumerate(handle, start=1):  # noqa: B007 - kept for the count below
                    if not line_may_match(line):
                        continue
                    try:
                        record = loads(line)
                    except decode_error:
                        if line.strip():
                            self._count_malformed(file, line_number, "not valid JSON")
                        continue
                    if type(record) is not dict:
                        self._count_malformed(file, line_number, "not a JSON object")
                        continue
                    if predicate(record):
                        yield Match(record, line.rstrip(b"\r\n"))
                self.lines += line_number

    def _count_malformed(self, file: Path, line_number: int, why: str) -> None:
        self.malformed += 1
        if len(self.malformed_examples) < 3:
            self.malformed_examples.append(f"{file}:{line_number}: {why}")
