"""The local sinks: rotating JSONL file, the logging module (python-json-logger) and loguru; bounded queues."""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

import llmmetrics
from llmmetrics.metrics import SelfMetrics
from llmmetrics.record import Record
from llmmetrics.sinks.file import FileSink
from llmmetrics.sinks.logging import LoggingSink, json_formatter, loguru_format
from llmmetrics.sinks.worker import QueuedSink

from tests.support.llm import make_client


def _record(n: int, size: int = 100) -> Record:
    line = orjson.dumps({"kind": "call", "n": n, "pad": "x" * size, "status": "success"})
    return Record(n, line, "call", "info", "openai", "gpt-4o-mini", "a" * 32, "b" * 16, "c" * 32, None, None)


def test_file_sink_rotates_and_keeps_every_record(tmp_path: Path) -> None:
    """Past max_bytes the file rotates to .1, .2 …; across the files every record is present once."""
    registry = CollectorRegistry()
    sink = FileSink(str(tmp_path / "t.jsonl"), SelfMetrics(registry), max_bytes=5_000, backups=50)
    for n in range(300):
        sink.emit(_record(n))
    assert sink.flush(10)
    sink.close(5)
    files = sorted(tmp_path.glob("t.jsonl*"))
    assert len(files) > 3 and all(f.stat().st_size <= 5_000 for f in files)
    seen = [orjson.loads(line)["n"] for f in files for line in f.read_bytes().splitlines()]
    assert sorted(seen) == list(range(300))


def test_a_forked_child_writes_its_own_pid_file(tmp_path: Path) -> None:
    """With ``{pid}`` in the path, a child forked after the sink was made (gunicorn --preload) writes to its own
    file; the parent's file keeps only the parent's records."""
    sink = FileSink(str(tmp_path / "t-{pid}.jsonl"), SelfMetrics(CollectorRegistry()))
    sink.emit(_record(1))
    assert sink.flush(10)
    child = os.fork()
    if child == 0:  # the child: write one record through the inherited sink, then leave without cleanup
        try:
            sink.emit(_record(2))
            os._exit(0 if sink.flush(10) else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(child, 0)
    sink.emit(_record(3))
    assert sink.flush(10)
    sink.close(5)
    assert os.waitstatus_to_exitcode(status) == 0

    def numbers(path: Path) -> list[int]:
        return [orjson.loads(line)["n"] for line in path.read_bytes().splitlines()]

    assert numbers(tmp_path / f"t-{os.getpid()}.jsonl") == [1, 3]
    assert numbers(tmp_path / f"t-{child}.jsonl") == [2]


def test_file_sink_keeps_only_the_configured_backups(tmp_path: Path) -> None:
    """Rotation deletes the oldest file beyond trace_file_backups."""
    sink = FileSink(str(tmp_path / "t.jsonl"), SelfMetrics(CollectorRegistry()), max_bytes=2_000, backups=2)
    for n in range(200):
        sink.emit(_record(n))
        if n % 10 == 0:
            sink.flush(5)
    sink.close(5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.jsonl", "t.jsonl.1", "t.jsonl.2"]


class _Stuck(QueuedSink):
    name = "stuck"

    def __init__(self, self_metrics: SelfMetrics, release: threading.Event) -> None:
        self.release = release
        super().__init__(self_metrics, max_queue_bytes=10_000)

    def deliver(self, batch: list[Record]) -> None:
        self.release.wait(30)


def test_a_stuck_sink_bounds_memory_counts_drops_and_never_hangs_close() -> None:
    """A destination that never answers: the queue stops at its cap, drops are counted, close() returns."""
    registry = CollectorRegistry()
    release = threading.Event()
    sink = _Stuck(SelfMetrics(registry), release)
    for n in range(1000):
        sink.emit(_record(n))
    dropped = registry.get_sample_value("llmmetrics_records_dropped_total", {"sink": "stuck", "reason": "queue_full"})
    assert dropped is not None and dropped >= 1000 - 10_000 // 120
    assert sink.flush(0.2) is False
    started = time.monotonic()
    sink.close(0.5)
    assert time.monotonic() - started < 5
    release.set()


def test_logging_sink_emits_the_record_as_json_through_python_json_logger(tmp_path: Path, llm_server: Any) -> None:
    """log_records=True sends every record to logger llmmetrics.trace; json_formatter renders its fields."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    logger = logging.getLogger("llmmetrics.trace")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    rt = llmmetrics.configure(registry=CollectorRegistry(), trace_file=None, log_records=True)
    try:
        llmmetrics.instrument(make_client(llm_server)).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        assert rt.flush(10)
    finally:
        rt.close(5)
        logger.removeHandler(handler)
    [line] = stream.getvalue().splitlines()
    logged = json.loads(line)
    assert logged["event"] == "llm_trace" and logged["model"] == "gpt-4o-mini" and logged["input_tokens"] > 0
    assert logged["messages"] == [{"role": "user", "content": "hi"}]


def test_loguru_format_renders_the_same_json() -> None:
    """With loguru, the documented format prints the bound record as one JSON line."""
    from loguru import logger as loguru_logger

    out = io.StringIO()
    handler_id = loguru_logger.add(out, format=loguru_format)
    registry = CollectorRegistry()
    sink = LoggingSink(SelfMetrics(registry), loguru_logger=loguru_logger, logger=logging.getLogger("unused.test"))
    record = _record(7)
    sink.emit(record)
    assert sink.flush(5)
    sink.close(5)
    loguru_logger.remove(handler_id)
    assert json.loads(out.getvalue().strip()) == orjson.loads(record.line)
