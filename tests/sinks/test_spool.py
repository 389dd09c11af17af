"""The on-disk spool: framing survives a crash, torn tails are cut, the cap holds, one process per slot."""

from __future__ import annotations

import os
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.loki_contract_server import LokiContractServer
from prometheus_client import CollectorRegistry

from llmmetrics.config import Config, ConfigError
from llmmetrics.metrics import SelfMetrics
from llmmetrics.record import Record
from llmmetrics.sinks.loki import LokiSink
from llmmetrics.sinks.spool import MAX_SLOTS, Spool, SpoolError


def record(i: int, *, ts_ns: int | None = None) -> Record:
    return Record(time.time_ns() if ts_ns is None else ts_ns, b'{"i":%d,"text":"caf\xc3\xa9"}' % i, "call",
                  "error", "openai", "gpt-4o", f"{i:032x}", f"{i:016x}", f"{i:032x}", "u-7" if i % 2 else None,
                  "req" if i % 3 else None)


def open_spool(root: Path, drops: list[tuple[int, str]] | None = None, **kw: int) -> Spool:
    kw = {"max_bytes": 10_000_000, "segment_max_bytes": 1_000_000, "segment_max_records": 100, **kw}
    return Spool(str(root), on_drop=lambda n, reason: (drops if drops is not None else []).append((n, reason)),
                 **kw)  # type: ignore[arg-type]


def segments(root: Path) -> list[Path]:
    return sorted(root.rglob("*.seg"))


class TestFraming:
    def test_records_round_trip_exactly(self, tmp_path: Path) -> None:
        """Every Record field, UTF-8 lines and None ids included, comes back from disk unchanged."""
        spool = open_spool(tmp_path)
        records = [record(i) for i in range(10)]
        spool.append(records)
        seq, back = spool.oldest()  # type: ignore[misc]
        assert back == records
        spool.ack(seq)
        assert spool.records == 0 and spool.bytes == 0 and segments(tmp_path) == []

    def test_segments_hold_at_most_one_batch(self, tmp_path: Path) -> None:
        """Segments rotate at segment_max_records, so a segment is one push; they are read oldest first."""
        spool = open_spool(tmp_path, segment_max_records=10)
        spool.append([record(i) for i in range(25)])
        assert len(segments(tmp_path)) == 3 and spool.records == 25
        first: list[int] = []
        while (oldest := spool.oldest()) is not None:
            seq, recs = oldest
            first.append(int(recs[0].trace_id, 16))
            spool.ack(seq)
        assert first == [0, 10, 20]

    def test_a_torn_tail_is_cut_on_open_and_never_replayed(self, tmp_path: Path) -> None:
        """A half-written frame (process killed mid-write) is truncated when the spool is reopened."""
        spool = open_spool(tmp_path)
        spool.append([record(i) for i in range(5)])
        spool.close()
        (path,) = segments(tmp_path)
        whole = path.stat().st_size
        payload = b'[1,"call"' * 10
        with open(path, "ab") as f:  # header promises more than was written
            f.write(struct.pack("<II", len(payload) + 50, zlib.crc32(payload)) + payload)
        reopened = open_spool(tmp_path)
        assert reopened.torn_bytes > 0 and path.stat().st_size == whole
        assert reopened.records == 5
        _, back = reopened.oldest()  # type: ignore[misc]
        assert back == [record(i)._replace(ts_ns=r.ts_ns) for i, r in enumerate(back)]

    def test_a_corrupt_last_frame_is_detected_by_its_crc(self, tmp_path: Path) -> None:
        """A frame whose bytes changed (CRC mismatch) ends the valid prefix."""
        spool = open_spool(tmp_path)
        spool.append([record(i) for i in range(3)])
        spool.close()
        (path,) = segments(tmp_path)
        data = bytearray(path.read_bytes())
        data[-2] ^= 0xFF
        path.write_bytes(bytes(data))
        reopened = open_spool(tmp_path)
        assert reopened.records == 2 and reopened.torn_bytes > 0


class TestCap:
    def test_oldest_segments_are_dropped_when_full_and_counted(self, tmp_path: Path) -> None:
        """Past max_bytes the oldest segments go first, reported as spool_full with their record counts."""
        drops: list[tuple[int, str]] = []
        spool = open_spool(tmp_path, drops, max_bytes=3000, segment_max_records=5)
        for start in range(0, 100, 5):
            spool.append([record(i) for i in range(start, start + 5)])
        assert spool.bytes <= 3000
        assert sum(n for n, _ in drops) + spool.records == 100
        assert {reason for _, reason in drops} == {"spool_full"}
        _, oldest = spool.oldest()  # type: ignore[misc]
        assert int(oldest[0].trace_id, 16) == 100 - spool.records  # the newest are kept


class TestOneProcessPerSlot:
    def test_a_second_owner_gets_its_own_slot_and_a_restart_reuses_the_first(self, tmp_path: Path) -> None:
        """Two spools on one directory never share a slot; once released, the slot and its data are reused."""
        first = open_spool(tmp_path)
        first.append([record(1)])
        second = open_spool(tmp_path)
        assert first.dir != second.dir and second.records == 0
        first.close()
        third = open_spool(tmp_path)
        assert third.dir == first.dir and third.records == 1
        second.close()
        third.close()

    def test_all_slots_busy_is_a_clear_error(self, tmp_path: Path) -> None:
        """When every slot is held, opening fails with an error that says what to do."""
        held = [open_spool(tmp_path) for _ in range(MAX_SLOTS)]
        try:
            with pytest.raises(SpoolError, match="own loki_spool_dir"):
                open_spool(tmp_path)
        finally:
            for spool in held:
                spool.close()

    def test_an_unusable_directory_is_a_config_error(self, tmp_path: Path) -> None:
        """A spool path that cannot be created is refused when the sink is built."""
        blocker = tmp_path / "file"
        blocker.write_text("")
        with pytest.raises(ConfigError, match="loki_spool_dir"):
            LokiSink(Config(loki_url="http://127.0.0.1:9", trace_file=None, loki_spool_dir=str(blocker / "x")),
                     SelfMetrics(CollectorRegistry()))


class TestReplay:
    @pytest.fixture()
    def loki(self) -> Iterator[LokiContractServer]:
        with LokiContractServer() as server:
            yield server

    def test_replay_drops_records_past_the_horizon_and_deletes_acknowledged_segments(
            self, tmp_path: Path, loki: LokiContractServer) -> None:
        """On replay, records older than loki_replay_max_age_seconds are counted too_old; the rest are sent."""
        old = time.time_ns() - 7200 * 10**9
        spool = open_spool(tmp_path)
        spool.append([record(0, ts_ns=old), record(1, ts_ns=old), record(2), record(3)])
        spool.close()
        registry = CollectorRegistry()
        sink = LokiSink(Config(loki_url=loki.url, trace_file=None, loki_spool_dir=str(tmp_path),
                               loki_replay_max_age_seconds=3600, loki_batch_wait_seconds=0.05),
                        SelfMetrics(registry))
        try:
            assert sink.flush(10)
            assert sorted(e.metadata["trace_id"] for e in loki.accepted) == [f"{2:032x}", f"{3:032x}"]
            assert registry.get_sample_value("llmmetrics_records_dropped_total",
                                             {"sink": "loki", "reason": "too_old"}) == 2
            assert segments(tmp_path) == []
            assert registry.get_sample_value("llmmetrics_loki_spool_records") == 0
        finally:
            sink.close(2)

    def test_close_during_an_outage_spools_what_is_left(self, tmp_path: Path, loki: LokiContractServer) -> None:
        """Closing while Loki is down writes the queue to the spool; the next sink delivers it."""
        loki.down()
        registry = CollectorRegistry()
        config = Config(loki_url=loki.url, trace_file=None, loki_spool_dir=str(tmp_path),
                        loki_batch_wait_seconds=0.05, loki_max_backoff_seconds=0.2)
        sink = LokiSink(config, SelfMetrics(registry))
        for i in range(100):
            sink.emit(record(i))
        sink.close(1.0)
        assert registry.get_sample_value("llmmetrics_loki_spool_records") == 100
        loki.up()
        again = LokiSink(config, SelfMetrics(CollectorRegistry()))
        try:
            assert again.flush(10)
            assert len(loki.accepted) == 100
        finally:
            again.close(2)
        assert os.listdir(tmp_path) == ["slot-0"]


class TestFork:
    @pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX-only")
    def test_a_forked_child_spools_into_its_own_slot(self, tmp_path: Path) -> None:
        """Parent and forked child never share spool files; each slot is replayed by whoever takes it next."""
        with LokiContractServer() as loki:
            loki.down()
            config = Config(loki_url=loki.url, trace_file=None, loki_spool_dir=str(tmp_path),
                            loki_batch_wait_seconds=0.05, loki_max_backoff_seconds=0.2)
            parent = LokiSink(config, SelfMetrics(CollectorRegistry()))
            parent.emit(record(0))
            pid = os.fork()
            if pid == 0:  # child: its records go to its own slot when it closes during the outage
                try:
                    for i in range(1, 4):
                        parent.emit(record(i))
                    parent.close(1.0)
                    os._exit(0)
                except BaseException:
                    os._exit(1)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            parent.close(1.0)
            slots = {p.parent.name for p in tmp_path.rglob("*.seg")}
            assert slots == {"slot-0", "slot-1"}
            loki.up()
            replayers = [LokiSink(config, SelfMetrics(CollectorRegistry())) for _ in range(2)]
            try:
                assert all(s.flush(10) for s in replayers)
            finally:
                for s in replayers:
                    s.close(2)
            assert sorted(int(e.metadata["trace_id"], 16) for e in loki.accepted) == [0, 1, 2, 3]
