"""Exemplars across worker processes: one small mmap'd table per worker, next to prometheus_client's files.

prometheus_client's multiprocess mode keeps each process's values in ``PROMETHEUS_MULTIPROC_DIR`` and drops
exemplars. Here each worker keeps, in the same directory, the most recent exemplar of every (series, bucket)
it recorded, and the process that serves ``/metrics`` reads every table and keeps the newest exemplar per
bucket (``read_exemplars``), no older than a horizon.

Why it is shaped like this:

- **Fixed-size entries, written in place, no locks.** The exporter thread writes an entry with one slice
  assignment into the mapping (a key's position is found once). An entry carries a CRC-32 of its bytes, so a
  reader that meets a half-written entry (another process, no shared lock, any CPU's memory order) sees a
  mismatch and skips it, instead of pairing one call's trace id with another call's value.
- **Slots, not pids.** A worker claims the first table file nobody holds, by an exclusive ``flock`` kept for
  its lifetime; the kernel releases it when the process ends, however it ends. A replacement worker
  (gunicorn ``max_requests``, a crash, ``uvicorn --workers`` restarting one) takes over a dead worker's file,
  so there are never more files than workers alive at once, however many pids come and go. The entries the
  dead worker left stay readable until the horizon passes; the new worker overwrites them as it records.
- **Bounded.** A table grows by doubling up to ``MAX_ENTRIES``; the series it can hold are already bounded
  by the model cardinality cap. Past that, an exemplar is not shared, and the write returns ``False`` for the
  caller to count.

File layout (little-endian): a 64-byte header (``LLMX``, version, entry size, entries used, capacity, the
writer's pid), then entries of ``ENTRY_BYTES``: CRC-32 of the rest, key length, value, timestamp, trace id
(32 ASCII), span id (16 ASCII), key (``["<sample name>", {labels}]`` as compact sorted JSON).

>>> import tempfile
>>> directory = tempfile.mkdtemp()
>>> table = ExemplarTable(directory)
>>> table.slot("llm_cost_usd_total", {"model": "gpt-4o-mini"}).write(Exemplar({"trace_id": "a" * 32, "span_id": "b" * 16}, 0.001, 1e9))
True
>>> read_exemplars(directory, not_before=0.0)[("llm_cost_usd_total", (("model", "gpt-4o-mini"),))].value
0.001
"""

from __future__ import annotations

import fcntl
import glob
import json
import logging
import mmap
import os
import struct
import threading
import time
import weakref
import zlib
from collections.abc import Mapping
from typing import Any

from prometheus_client.samples import Exemplar

from .private_files import open_private

__all__ = ["ExemplarTable", "ExemplarSlot", "read_exemplars", "shared_table", "FILE_PATTERN", "ENTRY_BYTES"]

log = logging.getLogger("llmmetrics")

#: Table files, one per worker slot. Not ``*.db``: prometheus_client's collector reads every ``*.db`` file.
FILE_PATTERN = "llmmetrics_exemplars_{slot}.mmap"
MAGIC = b"LLMX"
VERSION = 1
ENTRY_BYTES = 384
HEADER_BYTES = 64
INITIAL_ENTRIES = 256
#: 24 MB at most per worker (sparse until used): room for every bucket of 50 models × 3 operations × 2
#: statuses on several providers. The model cardinality cap keeps real tables far below it.
MAX_ENTRIES = 1 << 16
MAX_SLOTS = 4096

_HEADER = struct.Struct("<4sHHIIi")  # magic, version, entry size, used, capacity, writer pid
_BODY = struct.Struct("<HHdd32s16s")  # key length, reserved, value, timestamp, trace id, span id
_CRC = struct.Struct("<I")
_KEY_AT = _CRC.size + _BODY.size
MAX_KEY_BYTES = ENTRY_BYTES - _KEY_AT
_USED_AT = 8  # offset of "used" in the header


def exemplar_key(sample_name: str, labels: Mapping[str, str]) -> bytes:
    """The bytes that name one exposed sample: its name and labels, as compact sorted JSON."""
    return json.dumps([sample_name, dict(labels)], sort_keys=True, separators=(",", ":")).encode()


class ExemplarSlot:
    """Where one series' bucket keeps its newest exemplar; ``write`` is what the exporter calls."""

    __slots__ = ("_table", "_key")

    def __init__(self, table: ExemplarTable, key: bytes) -> None:
        self._table = table
        self._key = key

    def write(self, exemplar: Exemplar) -> bool:
        """Record ``exemplar`` as this bucket's newest; ``False`` when it could not be shared (counted by the
        caller). Never raises: it runs inside the exporter's counting of a call."""
        labels = exemplar.labels
        timestamp = exemplar.timestamp
        return self._table.write(self._key, float(exemplar.value),
                                 time.time() if timestamp is None else float(timestamp),
                                 labels.get("trace_id", ""), labels.get("span_id", ""))


class ExemplarTable:
    """This process's table in ``directory``: claimed on first write, re-claimed after a fork."""

    def __init__(self, directory: str, *, max_entries: int = MAX_ENTRIES) -> None:
        self.directory = directory
        self.max_entries = max_entries
        self.path: str | None = None
        self._failed = False
        self._forget()
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (t := ref()) is not None and t._forget())

    def slot(self, sample_name: str, labels: Mapping[str, str]) -> ExemplarSlot:
        return ExemplarSlot(self, exemplar_key(sample_name, labels))

    def write(self, key: bytes, value: float, timestamp: float, trace_id: str, span_id: str) -> bool:
        try:
            trace, span = trace_id.encode(), span_id.encode()
            if len(trace) > 32 or len(span) > 16:
                return False  # not llmmetrics' W3C-sized ids: never truncate an id into a wrong link
            pos = self._positions.get(key)
            if pos is None:
                pos = self._add(key)
                if pos is None:
                    return False
            body = _BODY.pack(len(key), 0, value, timestamp, trace, span) + key
            self._map[pos:pos + _CRC.size + len(body)] = _CRC.pack(zlib.crc32(body)) + body
            return True
        except Exception:  # the exporter must go on counting; the caller counts the miss
            log.debug("llmmetrics: writing a shared exemplar failed", exc_info=True)
            return False

    def close(self) -> None:
        """Release the file (and with it the slot); for tests and an orderly shutdown."""
        with self._lock:
            if self._map is not None:
                self._map.close()
            if self._fd is not None:
                os.close(self._fd)  # closing the descriptor releases the flock
            self._forget()

    # -- claiming and growing (under the lock) ----------------------------------------------------------------

    def _forget(self) -> None:
        """Drop this process's hold on a table: at start, and in a forked child, which must claim its own
        (it closes its inherited descriptor, which leaves the parent's lock in place)."""
        fd = getattr(self, "_fd", None)
        if fd is not None and getattr(self, "_pid", None) != os.getpid():
            try:
                os.close(fd)
            except OSError:
                pass
        self._lock = threading.Lock()  # taken only to claim the file and to add a key, never per write
        self._fd: int | None = None
        self._map: mmap.mmap | None = None
        self._positions: dict[bytes, int] = {}
        self._used = 0
        self._capacity = 0
        self._pid = os.getpid()
        self.path = None

    def _add(self, key: bytes) -> int | None:
        if len(key) > MAX_KEY_BYTES:
            return None
        with self._lock:
            pos = self._positions.get(key)
            if pos is not None:
                return pos
            if self._map is None and not self._claim():
                return None
            if self._used == self._capacity and not self._grow():
                return None
            pos = HEADER_BYTES + self._used * ENTRY_BYTES
            # the key goes in first with an empty exemplar (timestamp 0: never read as current) ...
            body = _BODY.pack(len(key), 0, 0.0, 0.0, b"", b"") + key
            self._map[pos:pos + _CRC.size + len(body)] = _CRC.pack(zlib.crc32(body)) + body
            self._used += 1
            # ... and then the count that makes readers look at it
            self._map[_USED_AT:_USED_AT + 4] = struct.pack("<I", self._used)
            self._positions[key] = pos
            return pos

    def _claim(self) -> bool:
        """Take the first table file no live process holds; adopt what a dead worker left in it."""
        if self._failed:
            return False
        try:
            for slot in range(MAX_SLOTS):
                path = os.path.join(self.directory, FILE_PATTERN.format(slot=slot))
                fd = open_private(path, os.O_RDWR | os.O_CREAT)  # trace ids: private, as trace files are
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                except BaseException:
                    os.close(fd)
                    raise
                self._open(fd, path)
                return True
            raise OSError(f"all {MAX_SLOTS} exemplar table files in {self.directory} are held by live processes")
        except OSError as exc:
            self._failed = True
            log.warning("llmmetrics: exemplars are not shared across worker processes: %s", exc)
            return False

    def _open(self, fd: int, path: str) -> None:
        size = os.fstat(fd).st_size
        header = os.pread(fd, HEADER_BYTES, 0)
        adopted = False
        if size >= HEADER_BYTES + ENTRY_BYTES and len(header) == HEADER_BYTES:
            magic, version, entry, used, capacity, _pid = _HEADER.unpack_from(header)
            adopted = (magic, version, entry) == (MAGIC, VERSION, ENTRY_BYTES) and used <= capacity \
                and HEADER_BYTES + capacity * ENTRY_BYTES <= size and capacity <= MAX_ENTRIES
        if not adopted:
            used, capacity = 0, min(INITIAL_ENTRIES, self.max_entries)
            os.ftruncate(fd, 0)  # whatever was there (another version, a torn file) goes
            os.ftruncate(fd, HEADER_BYTES + capacity * ENTRY_BYTES)
        self._fd, self.path = fd, path
        self._map = mmap.mmap(fd, HEADER_BYTES + capacity * ENTRY_BYTES)
        self._capacity = capacity
        self._used = 0
        for i in range(used):  # the dead worker's keys keep their positions; their exemplars age out
            pos = HEADER_BYTES + i * ENTRY_BYTES
            key_len = struct.unpack_from("<H", self._map, pos + _CRC.size)[0]
            if key_len > MAX_KEY_BYTES:
                break  # a torn tail: the entries after it are rewritten as keys come
            self._positions.setdefault(bytes(self._map[pos + _KEY_AT:pos + _KEY_AT + key_len]), pos)
            self._used = i + 1
        self._map[:HEADER_BYTES] = _HEADER.pack(MAGIC, VERSION, ENTRY_BYTES, self._used, capacity,
                                                os.getpid()).ljust(HEADER_BYTES, b"\0")

    def _grow(self) -> bool:
        if self._capacity >= self.max_entries:
            return False
        capacity = min(self._capacity * 2, self.max_entries)
        assert self._fd is not None
        os.ftruncate(self._fd, HEADER_BYTES + capacity * ENTRY_BYTES)
        # the old mapping stays valid for a write in progress on another thread; it is released with it
        self._map = mmap.mmap(self._fd, HEADER_BYTES + capacity * ENTRY_BYTES)
        self._capacity = capacity
        self._map[12:16] = struct.pack("<I", capacity)
        return True


_shared: ExemplarTable | None = None
_shared_lock = threading.Lock()


def shared_table() -> ExemplarTable | None:
    """This process's table when prometheus_client runs in multiprocess mode, else ``None``.

    prometheus_client picks its value class once, at import, from ``PROMETHEUS_MULTIPROC_DIR``; the table
    follows the same decision so that values and exemplars always live in the same place.
    """
    global _shared
    from prometheus_client import values

    if not getattr(values.ValueClass, "_multiprocess", False):
        return None
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")
    if not directory:
        return None
    with _shared_lock:
        if _shared is None or _shared.directory != directory:
            _shared = ExemplarTable(directory)
        return _shared


# -- reading (the process that serves /metrics) ---------------------------------------------------------------

SampleKey = tuple[str, tuple[tuple[str, str], ...]]
_parsed: dict[bytes, SampleKey] = {}
_READ_RETRIES = 3


def read_exemplars(directory: str, not_before: float) -> dict[SampleKey, Exemplar]:
    """The newest exemplar per exposed sample across every worker's table, none older than ``not_before``
    (seconds since the epoch). Keys are ``(sample name, sorted label pairs)``. Takes no lock."""
    newest: dict[SampleKey, tuple[float, float, bytes, bytes]] = {}
    for path in glob.glob(os.path.join(directory, FILE_PATTERN.format(slot="*"))):
        try:
            with open(path, "rb") as f:
                _read_table(f.fileno(), not_before, newest)
        except OSError:
            continue  # a file being created or replaced: the next scrape reads it
    return {key: Exemplar({"trace_id": trace.decode(), "span_id": span.decode()}, value, ts)
            for key, (ts, value, trace, span) in newest.items()}


def _read_table(fd: int, not_before: float, newest: dict[SampleKey, tuple[float, float, bytes, bytes]]) -> None:
    header = os.pread(fd, HEADER_BYTES, 0)
    if len(header) < HEADER_BYTES:
        return
    magic, version, entry, used, _capacity, _pid = _HEADER.unpack_from(header)
    if (magic, version, entry) != (MAGIC, VERSION, ENTRY_BYTES):
        return
    data = os.pread(fd, used * ENTRY_BYTES, HEADER_BYTES)
    body_unpack = _BODY.unpack_from
    for offset in range(0, len(data) - ENTRY_BYTES + 1, ENTRY_BYTES):
        entry_bytes = data[offset:offset + ENTRY_BYTES]
        key_len, _, value, ts, trace, span = body_unpack(entry_bytes, _CRC.size)
        if ts < not_before or ts <= 0.0:
            continue  # aged out (or a key without an exemplar yet): no need to check it
        for attempt in range(_READ_RETRIES):
            if key_len <= MAX_KEY_BYTES and \
                    _CRC.unpack_from(entry_bytes)[0] == zlib.crc32(entry_bytes[_CRC.size:_KEY_AT + key_len]):
                break
            # being rewritten right now: read this entry again
            entry_bytes = os.pread(fd, ENTRY_BYTES, HEADER_BYTES + offset)
            if len(entry_bytes) < ENTRY_BYTES:
                return
            key_len, _, value, ts, trace, span = body_unpack(entry_bytes, _CRC.size)
        else:
            continue
        if ts < not_before:
            continue
        raw_key = entry_bytes[_KEY_AT:_KEY_AT + key_len]
        key = _parsed.get(raw_key)
        if key is None:
            key = _parse_key(raw_key)
            if key is None:
                continue
        best = newest.get(key)
        if best is None or ts > best[0]:
            newest[key] = (ts, value, trace.rstrip(b"\0"), span.rstrip(b"\0"))


def _parse_key(raw: bytes) -> SampleKey | None:
    try:
        name, labels = json.loads(raw)
        key: SampleKey = (name, tuple(sorted(labels.items())))
    except (ValueError, TypeError):
        return None
    if len(_parsed) >= 4 * MAX_ENTRIES:  # keys are bounded by cardinality; the cache is bounded regardless
        _parsed.clear()
    _parsed[raw] = key
    return key
