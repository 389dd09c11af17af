"""Trace files, their rotated backups and the Loki spool are private on disk: 0600 under umask 022, configurable
for the trace file, tightened but never loosened across a restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry

import llmmetrics
from llmmetrics.config import Config, ConfigError
from llmmetrics.fake_server import FakeLLMServer
from llmmetrics.metrics import SelfMetrics
from llmmetrics.record import Record
from llmmetrics.sinks.file import FileSink
from llmmetrics.sinks.spool import Spool
from tests.support.files import mode_of, modes, umask
from tests.support.llm import make_client


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """Every test here runs as a new user's shell would: umask 022, under which open() makes 0644 files."""
    with umask(0o022):
        yield


def _record(n: int) -> Record:
    line = orjson.dumps({"kind": "call", "n": n, "messages": [{"role": "user", "content": "x" * 200}]})
    return Record(n, line, "call", "info", "openai", "gpt-4o-mini", "a" * 32, "b" * 16, "c" * 32, None, None)


def _write(sink: FileSink, count: int, first: int = 0) -> None:
    for n in range(first, first + count):
        sink.emit(_record(n))
    assert sink.flush(10)


def _sink(path: Path, **kw: int) -> FileSink:
    return FileSink(str(path), SelfMetrics(CollectorRegistry()), **kw)


def test_trace_file_and_every_rotated_backup_are_0600(tmp_path: Path) -> None:
    """Rotation renames the file (mode kept) and creates the next one private again: no file is ever 0644."""
    sink = _sink(tmp_path / "t.jsonl", max_bytes=2_000, backups=3)
    _write(sink, 60)
    sink.close(5)
    found = modes(tmp_path, "t.jsonl*")
    assert sorted(found) == ["t.jsonl", "t.jsonl.1", "t.jsonl.2", "t.jsonl.3"]
    assert set(found.values()) == {0o600}, {name: oct(mode) for name, mode in found.items()}


def test_trace_file_mode_chooses_another_mode_for_new_files(tmp_path: Path) -> None:
    """trace_file_mode=0o640 (a log shipper's group) applies to the file and to each file rotation creates."""
    sink = _sink(tmp_path / "t.jsonl", max_bytes=2_000, backups=2, mode=0o640)
    _write(sink, 40)
    sink.close(5)
    assert set(modes(tmp_path, "t.jsonl*").values()) == {0o640}


def test_a_restart_tightens_files_an_older_version_left_readable(tmp_path: Path) -> None:
    """Reopening an existing 0644 file and 0644 backups makes them 0600, and appends to the file."""
    path = tmp_path / "t.jsonl"
    sink = _sink(path, max_bytes=2_000, backups=2)
    _write(sink, 20)
    sink.close(5)
    for file in tmp_path.glob("t.jsonl*"):
        file.chmod(0o644)
    before = path.read_bytes().count(b"\n")
    sink = _sink(path, max_bytes=1_000_000, backups=2)
    _write(sink, 3, first=100)
    sink.close(5)
    assert set(modes(tmp_path, "t.jsonl*").values()) == {0o600}
    assert path.read_bytes().count(b"\n") == before + 3


def test_a_restart_never_loosens_a_mode_the_user_made_tighter(tmp_path: Path) -> None:
    """With trace_file_mode=0o640, a file the user chmod-ed to 0600 stays 0600 when reopened and written."""
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"kind":"call"}\n')
    path.chmod(0o600)
    sink = _sink(path, max_bytes=1_000_000, backups=2, mode=0o640)
    _write(sink, 3)
    sink.close(5)
    assert mode_of(path) == 0o600


def test_the_spool_is_0600_even_under_a_umask_that_removes_owner_write(tmp_path: Path) -> None:
    """Spool segments and lock files are created 0600 exactly: umask 022 and umask 0277 alike."""
    for mask, root in ((0o022, tmp_path / "a"), (0o277, tmp_path / "b")):
        with umask(mask):
            spool = Spool(str(root), max_bytes=10_000_000, segment_max_bytes=1_000_000, segment_max_records=100)
            spool.append([_record(n) for n in range(5)])
            spool.close()
        files = {p.relative_to(root).as_posix(): mode_of(p) for p in root.rglob("*") if p.is_file()}
        assert set(files) == {"slot-0/lock", "slot-0/00000000000000000001.seg"}
        assert set(files.values()) == {0o600}, (oct(mask), files)


def test_configured_from_the_environment_through_a_real_call(tmp_path: Path, llm_server: FakeLLMServer) -> None:
    """LLMMETRICS_TRACE_FILE_MODE=0640 reaches the file written for a real openai call; the default is 0600."""
    for env, expected in (({}, 0o600), ({"LLMMETRICS_TRACE_FILE_MODE": "0640"}, 0o640)):
        path = tmp_path / f"traces-{expected:o}.jsonl"
        config = Config.from_env({"LLMMETRICS_TRACE_FILE": str(path), **env})
        runtime = llmmetrics.configure(config, registry=CollectorRegistry())
        try:
            client = llmmetrics.instrument(make_client(llm_server))
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}])
            assert runtime.flush(10)
        finally:
            runtime.close(5)
        assert b'"content":"hello"' in path.read_bytes()
        assert mode_of(path) == expected


@pytest.mark.parametrize("raw,mode", [("0640", 0o640), ("640", 0o640), ("0o600", 0o600), ("0644", 0o644)])
def test_the_environment_gives_the_mode_in_octal(raw: str, mode: int) -> None:
    """LLMMETRICS_TRACE_FILE_MODE is read as octal, as chmod takes it."""
    assert Config.from_env({"LLMMETRICS_TRACE_FILE_MODE": raw}).trace_file_mode == mode


@pytest.mark.parametrize("mode", [0o744, 0o400, 0o000, 0o1600, "0640", True])
def test_a_mode_the_owner_cannot_use_or_with_other_bits_is_refused(mode: object) -> None:
    """A mode without owner read-write (the sink reopens the file), with exec/sticky bits, or not an int fails at
    configure() time, naming the field; so does an environment value that is not octal."""
    with pytest.raises(ConfigError, match=r"trace_file_mode=.*: expected a file mode from 0o600 to 0o666"):
        Config(trace_file_mode=mode)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="LLMMETRICS_TRACE_FILE_MODE='0986'"):
        Config.from_env({"LLMMETRICS_TRACE_FILE_MODE": "0986"})
