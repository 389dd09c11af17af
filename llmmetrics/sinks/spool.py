"""A crash-safe on-disk spool of trace records waiting for Loki.

Layout: ``<spool_dir>/slot-<n>/`` holds a ``lock`` file and numbered segment files ``<seq>.seg``. A process
takes the first slot whose lock it can ``flock``; a second process (or a forked worker) sharing the same
``spool_dir`` gets the next slot, so two writers never share a file. Because the kernel drops the lock when a
process dies, a restarted process takes the same slot again and replays what its predecessor left there.

A segment is a sequence of frames ``<u32 length><u32 crc32><payload>`` (little-endian), one record per frame.
Segments are append-only and hold at most about one push worth of records, so a segment is the unit of
replay and acknowledgement: it is deleted once Loki has accepted it.

Durability (fsync policy): each ``append`` writes its frames in one ``write`` and then ``fsync``\\ s the
segment; creating a segment also fsyncs the directory. A process killed mid-write loses at most the frames
of that one write; a torn tail (short frame or CRC mismatch) is detected when the spool is opened and
truncated, never replayed as garbage.

Segments hold whole records, so they and the lock files are private (``0600`` whatever the umask, through
:func:`llmmetrics.private_files.open_private`; ``trace_file_mode`` does not apply: nothing else reads them).

>>> import tempfile
>>> spool = Spool(tempfile.mkdtemp(), max_bytes=10_000_000, segment_max_bytes=1_000_000, segment_max_records=100)
>>> spool.append([Record(1, b"{}", "call", "info", "openai", "m", "t", "s", "c", None, None)])
>>> segment, records = spool.oldest()
>>> records[0].line, spool.ack(segment), spool.records
(b'{}', None, 0)
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import zlib
from collections.abc import Callable, Sequence

import orjson

from ..private_files import open_private
from ..record import Record

__all__ = ["MAX_SLOTS", "Spool", "SpoolError"]

_FRAME = struct.Struct("<II")
_MAX_FRAME = 64 * 1024 * 1024
#: How many processes may share one spool directory (one slot each).
MAX_SLOTS = 64


class SpoolError(OSError):
    """The spool directory cannot be used (not writable, or every slot is held by a live process)."""


def _encode(r: Record) -> bytes:
    payload = orjson.dumps([r.ts_ns, r.kind, r.level, r.provider, r.model, r.trace_id, r.span_id, r.call_id,
                            r.user_id, r.request_id, r.line.decode("utf-8", "replace")])
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def _decode(payload: bytes) -> Record:
    f = orjson.loads(payload)
    return Record(f[0], f[10].encode(), *f[1:10])


class _Segment:
    __slots__ = ("bytes", "path", "records", "seq")

    def __init__(self, seq: int, path: str, size: int, records: int) -> None:
        self.seq, self.path, self.bytes, self.records = seq, path, size, records


class Spool:
    """Bounded append-only spool for one process. Not thread-safe: only the sink's worker touches it."""

    def __init__(self, root: str, *, max_bytes: int, segment_max_bytes: int, segment_max_records: int,
                 on_drop: Callable[[int, str], None] | None = None) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._segment_max_bytes = segment_max_bytes
        self._segment_max_records = segment_max_records
        self._on_drop = on_drop or (lambda n, reason: None)
        self.torn_bytes = 0  # bytes cut from torn tails when opening
        try:
            os.makedirs(root, exist_ok=True)
        except OSError as e:
            raise SpoolError(e.errno, f"cannot create spool directory {root!r}: {e.strerror}") from None
        self.dir, self._lock_fd = self._take_slot(root)
        self._segments: list[_Segment] = []
        self._active_fd: int | None = None
        self.bytes = 0
        self.records = 0
        self._recover()

    @staticmethod
    def _take_slot(root: str) -> tuple[str, int]:
        for n in range(MAX_SLOTS):
            slot = os.path.join(root, f"slot-{n}")
            try:
                os.makedirs(slot, exist_ok=True)
                fd = open_private(os.path.join(slot, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
            except OSError as e:
                raise SpoolError(e.errno, f"cannot use spool directory {slot!r}: {e.strerror}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EACCES):
                    continue
                raise SpoolError(e.errno, f"cannot lock {slot!r}: {e.strerror}") from None
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return slot, fd
        raise SpoolError(errno.EBUSY, f"all {MAX_SLOTS} slots of spool directory {root!r} are held by live "
                                      "processes; give each process group its own loki_spool_dir")

    def _recover(self) -> None:
        """Index the segments left by a previous process, truncating torn tails."""
        names = [n for n in os.listdir(self.dir) if n.endswith(".seg") and n[:-4].isdigit()]
        for name in sorted(names, key=lambda n: int(n[:-4])):
            path = os.path.join(self.dir, name)
            with open(path, "rb") as f:
                data = f.read()
            good, count = _scan(data)
            if good < len(data):
                self.torn_bytes += len(data) - good
                with open(path, "r+b") as f:
                    f.truncate(good)
                    os.fsync(f.fileno())
            if count == 0:
                os.unlink(path)
                continue
            self._segments.append(_Segment(int(name[:-4]), path, good, count))
            self.bytes += good
            self.records += count

    def _next_seq(self) -> int:
        return self._segments[-1].seq + 1 if self._segments else 1

    def _open_segment(self) -> _Segment:
        seq = self._next_seq()
        path = os.path.join(self.dir, f"{seq:020d}.seg")
        self._active_fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC)
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        segment = _Segment(seq, path, 0, 0)
        self._segments.append(segment)
        return segment

    def _seal(self) -> None:
        if self._active_fd is not None:
            os.close(self._active_fd)
            self._active_fd = None

    def append(self, records: Sequence[Record]) -> None:
        """Write records durably (one write + fsync per segment touched), then enforce the size cap."""
        frames = [_encode(r) for r in records]
        i = 0
        while i < len(frames):
            if self._active_fd is None:
                segment = self._open_segment()
            else:
                segment = self._segments[-1]
            room_records = self._segment_max_records - segment.records
            j, size = i, 0
            while j < len(frames) and j - i < room_records and (j == i or segment.bytes + size + len(frames[j])
                                                                  <= self._segment_max_bytes):
                size += len(frames[j])
                j += 1
            if j == i:  # segment full
                self._seal()
                continue
            assert self._active_fd is not None
            os.write(self._active_fd, b"".join(frames[i:j]))
            os.fsync(self._active_fd)
            segment.bytes += size
            segment.records += j - i
            self.bytes += size
            self.records += j - i
            if segment.records >= self._segment_max_records or segment.bytes >= self._segment_max_bytes:
                self._seal()
            i = j
        while self.bytes > self.max_bytes and self._segments:
            self._drop_oldest("spool_full")

    def _drop_oldest(self, reason: str) -> None:
        segment = self._segments[0]
        if len(self._segments) == 1:
            self._seal()
        self._remove(segment)
        self._on_drop(segment.records, reason)

    def _remove(self, segment: _Segment) -> None:
        self._segments.remove(segment)
        self.bytes -= segment.bytes
        self.records -= segment.records
        try:
            os.unlink(segment.path)
        except FileNotFoundError:
            pass

    def oldest(self) -> tuple[int, list[Record]] | None:
        """The oldest segment's records (sealing it if it is still being written), or None if empty."""
        if not self._segments:
            return None
        segment = self._segments[0]
        if len(self._segments) == 1:
            self._seal()
        with open(segment.path, "rb") as f:
            data = f.read()
        records: list[Record] = []
        pos = 0
        while pos + _FRAME.size <= len(data):
            length, crc = _FRAME.unpack_from(data, pos)
            payload = data[pos + _FRAME.size:pos + _FRAME.size + length]
            if len(payload) != length or zlib.crc32(payload) != crc:
                break
            try:
                records.append(_decode(payload))
            except (ValueError, TypeError, IndexError):
                break
            pos += _FRAME.size + length
        if len(records) < segment.records:
            self._on_drop(segment.records - len(records), "spool_corrupt")
        return segment.seq, records

    def ack(self, seq: int) -> None:
        """Loki accepted (or finally refused) this segment: delete it."""
        for segment in self._segments:
            if segment.seq == seq:
                if segment is self._segments[-1]:
                    self._seal()
                self._remove(segment)
                return

    def close(self) -> None:
        """Release the slot (the lock goes with the descriptor)."""
        self._seal()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def forget_after_fork(self) -> None:
        """In a forked child: close the inherited descriptors without unlocking the parent's slot."""
        for fd in (self._active_fd, self._lock_fd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._active_fd = self._lock_fd = None


def _scan(data: bytes) -> tuple[int, int]:
    """(length of the valid prefix, number of frames in it)."""
    pos = count = 0
    while pos + _FRAME.size <= len(data):
        length, crc = _FRAME.unpack_from(data, pos)
        end = pos + _FRAME.size + length
        if length > _MAX_FRAME or end > len(data) or zlib.crc32(data[pos + _FRAME.size:end]) != crc:
            break
        pos = end
        count += 1
    return pos, count
