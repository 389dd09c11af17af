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
import heapq
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from .filters import Query, SortOrder, Reversed, field_key, number_bound

__all__ = ["LocalScan", "Match", "NoTraceFiles", "trace_files"]

#: files are read in blocks this large (either direction), split into lines in one call
_BLOCK = 8 << 20


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
        self._malformed_at: list[tuple[Path, int, str]] = []

    def __iter__(self) -> Iterator[Match]:
        return self._scan(None, newest_first=False)

    def top(self, order: SortOrder, limit: int) -> list[Match]:
        """The first ``limit`` matches in ``order``, parsing only lines that could still make the cut.

        Once ``limit`` matches are held, a line is parsed only if the numbers that follow its sort field's
        key could beat the worst one held (see :func:`~.filters.number_bound`). Newest-first reads the
        files backwards, so the newest records arrive first and the rest are passed over unparsed.
        """
        key = None if order.field == "tokens" else field_key(order.field)
        descending = order.descending
        heap: list[tuple[tuple[bool, Any], int, Match]] = []

        def may_beat(line: bytes) -> bool:
            if key is None or len(heap) < limit:
                return True
            bound = number_bound(line, key, descending)
            if bound is None:
                if line.count(key) != line.count(key + b"null"):
                    return True  # a string or an object: no bound to prune with
                return (False, 0) > heap[0][0]  # the field is missing or null: it ranks last
            return (True, bound if descending else Reversed(bound)) > heap[0][0]

        for sequence, match in enumerate(self._scan(may_beat, newest_first=order.is_time and descending)):
            item = (order.rank(match.record), -sequence, match)
            if len(heap) < limit:
                heapq.heappush(heap, item)
            elif item[:2] > heap[0][:2]:
                heapq.heapreplace(heap, item)
        return [match for _, _, match in sorted(heap, key=lambda item: item[:2], reverse=True)]

    @property
    def malformed_examples(self) -> list[str]:
        """Where the first few malformed lines are, as ``file:line: why`` (computed only when asked)."""
        return [f"{file}:{_line_number(file, offset)}: {why}" for file, offset, why in self._malformed_at]

    def _scan(self, may_beat: Callable[[bytes], bool] | None, *, newest_first: bool) -> Iterator[Match]:
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
        for file in reversed(files) if newest_first else files:
            self.files.append(file)
            try:
                handle = open(file, "rb", buffering=0)
            except FileNotFoundError:
                continue  # rotated away between listing and opening: its records are in the next file
            with handle:
                # Whole blocks are split into lines at once: no per-line read call, no per-line generator.
                for block_offset, lines in _blocks_backwards(handle) if newest_first else _blocks(handle):
                    self.lines += len(lines)
                    for index, line in enumerate(reversed(lines) if newest_first else lines):
                        if not line_may_match(line) or (may_beat is not None and not may_beat(line)):
                            continue
                        try:
                            record = loads(line)
                        except decode_error:
                            if line.strip():
                                where = len(lines) - 1 - index if newest_first else index
                                self._count_malformed(file, block_offset, lines, where, "not valid JSON")
                            else:
                                self.lines -= 1  # a blank line is neither a record nor an error
                            continue
                        if type(record) is not dict:
                            where = len(lines) - 1 - index if newest_first else index
                            self._count_malformed(file, block_offset, lines, where, "not a JSON object")
                            continue
                        if predicate(record):
                            yield Match(record, line.rstrip(b"\r"))

    def _count_malformed(self, file: Path, block_offset: int, lines: list[bytes], index: int, why: str) -> None:
        self.malformed += 1
        if len(self._malformed_at) < 3:
            offset = block_offset + sum(len(line) + 1 for line in lines[:index])
            self._malformed_at.append((file, offset, why))


def _blocks(handle: BinaryIO) -> Iterator[tuple[int, list[bytes]]]:
    """(offset of the first line, lines without newline) for large blocks, from the start of the file."""
    offset, carry = 0, b""
    while True:
        chunk = handle.read(_BLOCK)
        if not chunk:
            break
        lines = (carry + chunk).split(b"\n")
        carry = lines.pop()  # the part after the last newline continues in the next block
        if lines:
            yield offset, lines
            offset += sum(map(len, lines)) + len(lines)
    if carry:
        yield offset, [carry]  # a last line without newline: complete, or a record cut off mid-write


def _blocks_backwards(handle: BinaryIO) -> Iterator[tuple[int, list[bytes]]]:
    """The same blocks, from the end of the file back to its start (each block's lines still in file order)."""
    position = handle.seek(0, os.SEEK_END)
    carry = b""
    while position > 0:
        step = min(_BLOCK, position)
        position -= step
        handle.seek(position)
        lines = (handle.read(step) + carry).split(b"\n")
        if position > 0:
            carry = lines.pop(0)  # may start in the block before
        else:
            carry = b""
        if lines and lines[-1] == b"":
            lines.pop()  # the file's final newline
        if lines:
            first = position + (len(carry) + 1 if position > 0 else 0)
            yield first, lines


def _line_number(file: Path, offset: int) -> int:
    """1-based line number of the line starting at ``offset`` (only for the few malformed examples)."""
    try:
        with open(file, "rb") as handle:
            return handle.read(offset).count(b"\n") + 1
    except OSError:
        return 0
