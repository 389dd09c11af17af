"""Scan the local JSONL trace files — the rotated backups and the live file — for records matching a query.

The file sink rotates ``traces.jsonl`` into ``traces.jsonl.1`` (newest backup) … ``traces.jsonl.N``
(oldest), so a scan reads ``.N`` down to ``.1`` and then the live file: records come out oldest first.
A line that is not a JSON object (a crash mid-write, a hand edit, a truncated tail) is skipped and
counted, never fatal (only lines the filters had to look at can be counted).

Speed on a million records comes from parsing as few lines as possible, and from working on whole blocks
of lines in C (``bytes.find``, ``split``, one regex pass) rather than line by line in Python:

- a block without a required exact value (``"status":"error"``) or the free text is skipped whole, and
  otherwise only the lines around the rarest required value are cut out; without one, a block with no
  timestamp in the time range is skipped whole;
- a top-N selection skips blocks, then lines, whose numbers cannot beat the N-th best held so far.

Every such test only ever lets extra lines through to the parser; the tests compare each with parsing
everything. Exact values are looked for as the file sink writes them (orjson: ``"key":"value"``) and as
Python's json module does (``"key": "value"``).

>>> scan = LocalScan("llmmetrics-traces.jsonl", Query(status="error"))   # doctest: +SKIP
>>> for match in scan: print(match.record["latency_ms"])                 # doctest: +SKIP
"""

from __future__ import annotations

import heapq
import itertools
import mmap
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from .filters import Query, Reversed, SortOrder
from .rawjson import NUMERIC_FIELDS, field_key, number_bound, number_pattern

__all__ = ["LocalScan", "Match", "NoTraceFiles", "trace_files"]

#: what blocks are searched in: the memory-mapped file (or bytes, which offer the same find/slice/regex API)
Buffer = mmap.mmap | bytes

#: files are read in blocks of whole lines about this large, in either direction
_BLOCK = 2 << 20


class NoTraceFiles(FileNotFoundError):
    """Neither the trace file nor any rotated backup of it exists."""


class Match(NamedTuple):
    """A matching record: the parsed object and its line exactly as stored (``--format json`` prints it).

    A tuple, not a dataclass: a full scan makes a million of them.
    """

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

    After (or during) iteration, ``files``, ``bytes_read`` and ``malformed`` say what was read, so the
    command can report e.g. "2 malformed lines skipped" instead of failing or losing them silently.
    """

    def __init__(self, path: str | os.PathLike[str], query: Query) -> None:
        self.path = Path(path)
        self.query = query
        self.files: list[Path] = []
        self.bytes_read = 0
        self.malformed = 0
        self._malformed_at: list[tuple[Path, int, str]] = []

    def __iter__(self) -> Iterator[Match]:
        return self._scan(newest_first=False)

    def top(self, order: SortOrder, limit: int) -> list[Match]:
        """The first ``limit`` matches in ``order``, parsing only lines that could still make the cut.

        Once ``limit`` matches are held, a block of lines — or a single line — is looked at only if a
        number following its sort field's key could beat the worst match held (the record's own value is
        among those numbers, see :func:`~.rawjson.any_number_within`). Newest-first reads the files
        backwards, so the newest records come first and older blocks are passed over unread by the parser.
        """
        key = None if order.field == "tokens" else field_key(order.field)
        pattern = number_pattern(key) if key is not None else None
        numeric = order.field.rsplit(".", 1)[-1] in NUMERIC_FIELDS
        descending = order.descending
        heap: list[tuple[tuple[bool, Any], int, Match]] = []

        def beats_worst(bound: float | None, text: bytes) -> bool:
            if bound is None:
                if not numeric and text.count(key) != text.count(key + b"null"):  # type: ignore[operator]
                    return True  # a string or an object: no bound to prune with
                return (False, 0) > heap[0][0]  # the field is missing or null everywhere: ranks last
            return (True, bound if descending else Reversed(bound)) > heap[0][0]

        def line_may_beat(line: bytes) -> bool:
            if key is None or len(heap) < limit:
                return True
            return beats_worst(number_bound(line, key, descending), line)

        to_number = int if order.field == "ts_ns" else float  # only nanosecond timestamps need int exactness
        recent_winners = [False]  # did the last block hold a number beating the worst? (then one pass)

        def block_candidates(data: Buffer, start: int, end: int) -> list[tuple[int, bytes]] | None:
            """None: every line may beat the worst held; else only the lines listed (none: skip the block)."""
            if pattern is None or len(heap) < limit or not heap[0][0][0]:
                return None  # not full yet, or records without a value are held: nothing to prune with
            worst = heap[0][0][1] if descending else heap[0][0][1].value
            if not numeric:
                block = data[start:end]
                if block.count(key) != len(pattern.findall(block)) + block.count(key + b"null"):  # type: ignore[operator]
                    return None  # some values are not numbers: no bound for the block
            elif not recent_winners[0]:
                # Blocks beating nothing are the common case: one C pass, then max/min, skips them.
                numbers = _numbers(pattern.findall(data, start, end))
                if not numbers or not (max(numbers) > worst if descending else min(numbers) < worst):
                    return []  # no number here beats the worst held, and lines without one rank last
            # Where beating numbers are found, cut out just their lines.
            found = pattern.finditer(data, start, end)
            if descending:
                positions = [m.start() for m in found if to_number(m.group(1)) > worst]
            else:
                positions = [m.start() for m in found if to_number(m.group(1)) < worst]
            recent_winners[0] = bool(positions)
            return _lines_at(positions, data, start, end)

        scan = self._scan(newest_first=order.is_time and descending, line_hook=line_may_beat,
                          block_hook=block_candidates)
        for sequence, match in enumerate(scan):
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

    def _scan(
        self,
        *,
        newest_first: bool,
        line_hook: Callable[[bytes], bool] | None = None,
        block_hook: Callable[[Buffer, int, int], list[tuple[int, bytes]] | None] | None = None,
    ) -> Iterator[Match]:
        """Matches in file order (or newest first), looking at as few lines as the filters allow.

        Blocks of whole lines are tested first, in place in the mapped file: without a required value (or,
        when none is required, without a timestamp in the time range) a block is skipped. When an exact
        value or free text is required, only the lines around the rarest one are cut out of the block;
        otherwise the block hook may name the lines worth reading, or the block is split into lines. Each
        candidate line then passes the byte-level line test and the line hook before it is parsed.
        """
        files = trace_files(self.path)
        if not files:
            raise NoTraceFiles(
                f"no trace file at {self.path} (nor rotated {self.path.name}.1 …): pass --file PATH or set "
                "LLMMETRICS_TRACE_FILE to where the application writes its traces"
            )
        compiled = self.query.compile()
        anchors: tuple[bytes, ...] | None = None  # chosen on the first block read
        # Checks that cannot reject anything are not called at all (a million calls add up).
        line_may_match = compiled.line_may_match if compiled.filters_lines else None
        predicate = compiled.predicate if compiled.checks else None
        loads = orjson.loads
        decode_error = orjson.JSONDecodeError
        for file in reversed(files) if newest_first else files:
            self.files.append(file)
            try:
                mapped = _map(file)
            except FileNotFoundError:
                continue  # rotated away between listing and opening: its records are in the next file
            if mapped is None:
                continue  # empty
            with mapped:
                # Blocks are ranges of the mapped file: searched in place, only lines are copied out.
                for start, end in _released(mapped, _blocks_backwards(mapped) if newest_first else _blocks(mapped)):
                    self.bytes_read += end - start
                    if not compiled.block_may_match(mapped, start, end):
                        continue
                    if anchors is None:
                        anchors = compiled.anchors(mapped[start:end])
                    if anchors:
                        candidates = _lines_containing(mapped, start, end, anchors)
                    else:
                        if not compiled.block_in_time(mapped, start, end):
                            continue
                        hooked = block_hook(mapped, start, end) if block_hook is not None else None
                        candidates = _all_lines(mapped, start, end) if hooked is None else hooked
                    for offset, line in reversed(candidates) if newest_first else candidates:
                        if line_may_match is not None and not line_may_match(line):
                            continue
                        if line_hook is not None and not line_hook(line):
                            continue
                        try:
                            record = loads(line)
                        except decode_error:
                            if line.strip():
                                self._count_malformed(file, offset, "not valid JSON")
                            continue
                        if type(record) is not dict:
                            self._count_malformed(file, offset, "not a JSON object")
                            continue
                        if predicate is None or predicate(record):
                            yield Match(record, line.rstrip(b"\r"))

    def _count_malformed(self, file: Path, offset: int, why: str) -> None:
        self.malformed += 1
        if len(self._malformed_at) < 3:
            self._malformed_at.append((file, offset, why))


def _all_lines(data: Buffer, start: int, end: int) -> list[tuple[int, bytes]]:
    """(file offset, line) for every line of the block ``data[start:end]``; offsets summed in C."""
    lines = data[start:end].split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # after the block's final newline
    return list(zip(itertools.accumulate(map((1).__add__, map(len, lines)), initial=start), lines))


def _lines_containing(data: Buffer, start: int, end: int, patterns: tuple[bytes, ...]) -> list[tuple[int, bytes]]:
    """(file offset, line) for the lines of ``data[start:end]`` holding one of ``patterns``, in order, once."""
    positions: list[int] = []
    for pattern in patterns:
        found = data.find(pattern, start, end)
        while found >= 0:
            positions.append(found)
            newline = data.find(b"\n", found, end)
            if newline < 0:
                break
            found = data.find(pattern, newline, end)
    return _lines_at(positions, data, start, end)


def _lines_at(positions: list[int], data: Buffer, start: int, end: int) -> list[tuple[int, bytes]]:
    """(file offset, line) for the lines of ``data[start:end]`` around the given positions, in order, once."""
    lines: dict[int, bytes] = {}
    for position in positions:
        line_start = data.rfind(b"\n", start, position) + 1 or start
        if line_start not in lines:
            line_end = data.find(b"\n", position, end)
            lines[line_start] = data[line_start:line_end if line_end >= 0 else end]
    return sorted(lines.items())


def _numbers(texts: list[bytes]) -> list[int | float]:
    try:
        return list(map(int, texts))
    except ValueError:
        return list(map(float, texts))


def _map(file: Path) -> mmap.mmap | None:
    """The file, memory-mapped read-only as it is now (a writer appending later is not seen); None if empty."""
    with open(file, "rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return None
        return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)


def _blocks(mapped: mmap.mmap) -> Iterator[tuple[int, int]]:
    """(start, end) of blocks of whole lines about ``_BLOCK`` long, from the start of the file."""
    size, start = len(mapped), 0
    while start < size:
        end = min(start + _BLOCK, size)
        if end < size:
            newline = mapped.rfind(b"\n", start, end)
            if newline < 0:  # one line longer than a block: take it whole
                newline = mapped.find(b"\n", end)
            end = size if newline < 0 else newline + 1
        yield start, end
        start = end


def _blocks_backwards(mapped: mmap.mmap) -> Iterator[tuple[int, int]]:
    """The same blocks, from the end of the file back to its start."""
    end = len(mapped)
    while end > 0:
        start = max(0, end - _BLOCK)
        if start > 0:
            newline = mapped.find(b"\n", start, end - 1)
            if newline < 0:  # one line longer than a block: take it whole
                newline = mapped.rfind(b"\n", 0, start)
            start = newline + 1
        yield start, end
        end = start


def _released(mapped: mmap.mmap, blocks: Iterator[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """The blocks, each one's pages handed back once the scan asks for the next (lines are copies by then).

    Pages of a mapped file that were read stay in the process's resident set until unmapped: without this a
    scan of a 1.4 GB file peaks at 1.4 GB of RSS (reclaimable page cache, but counted, and alarming); with it
    about one block. The file's pages stay in the page cache, so nothing is read twice. The block read
    before is released again with each one: a fault maps its neighbours too (the kernel's fault-around),
    which puts a few pages of the block before back.
    """
    previous: tuple[int, int] | None = None
    for start, end in blocks:
        yield start, end
        if _DONTNEED is not None:
            low, high = (start, end) if previous is None else (min(start, previous[0]), max(end, previous[1]))
            low -= low % mmap.PAGESIZE
            mapped.madvise(_DONTNEED, low, high - low)
        previous = start, end


#: Linux and macOS; elsewhere the pages stay mapped until the file is closed
_DONTNEED = getattr(mmap, "MADV_DONTNEED", None)


def _line_number(file: Path, offset: int) -> int:
    """1-based line number of the line starting at ``offset`` (only for the few malformed examples)."""
    try:
        with open(file, "rb") as handle:
            return handle.read(offset).count(b"\n") + 1
    except OSError:
        return 0
