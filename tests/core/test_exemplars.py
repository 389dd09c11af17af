"""The shared exemplar tables: newest per sample across workers, the horizon, torn entries, slots taken
over from dead workers (never more files than live writers), forks, and the bounds."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from prometheus_client.samples import Exemplar

from llmmetrics.exemplars import ENTRY_BYTES, HEADER_BYTES, ExemplarTable, read_exemplars

DURATION = "llm_request_duration_seconds_bucket"
LABELS = {"provider": "openai", "model": "gpt-4o-mini", "operation": "chat", "status": "ok", "le": "0.32"}
KEY = (DURATION, tuple(sorted(LABELS.items())))


def _exemplar(trace: str, value: float, at: float) -> Exemplar:
    return Exemplar({"trace_id": trace * 32, "span_id": trace * 16}, value, at)


def _run(code: str, directory: Path) -> str:
    """``code`` in a fresh process (its own pid, its own lock on a table); returns what it printed."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code), str(directory)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_newest_exemplar_of_a_sample_wins_across_workers(tmp_path: Path) -> None:
    """Two workers' tables hold the same bucket: the reader serves the one recorded last, and every other
    sample from whichever table has it."""
    now = time.time()
    a, b = ExemplarTable(str(tmp_path)), ExemplarTable(str(tmp_path))
    try:
        assert a.slot(DURATION, LABELS).write(_exemplar("a", 0.30, now - 2))
        assert b.slot(DURATION, LABELS).write(_exemplar("b", 0.31, now - 1))
        assert a.slot("llm_cost_usd_total", {"model": "gpt-4o-mini"}).write(_exemplar("c", 0.002, now - 5))
        assert a.path != b.path  # each process (here: each open table) holds a file of its own
        found = read_exemplars(str(tmp_path), not_before=now - 60)
    finally:
        a.close()
        b.close()
    assert found[KEY] == _exemplar("b", 0.31, now - 1)
    assert found[("llm_cost_usd_total", (("model", "gpt-4o-mini"),))].labels["trace_id"] == "c" * 32
    assert len(found) == 2


def test_exemplars_older_than_the_horizon_are_not_read(tmp_path: Path) -> None:
    """An exemplar recorded before ``not_before`` is left out; a newer one of another sample is kept."""
    now = time.time()
    table = ExemplarTable(str(tmp_path))
    try:
        table.slot(DURATION, LABELS).write(_exemplar("a", 0.3, now - 400))
        table.slot(DURATION, {**LABELS, "le": "0.64"}).write(_exemplar("b", 0.5, now - 10))
        assert list(read_exemplars(str(tmp_path), not_before=now - 300)) == [(DURATION, tuple(sorted({**LABELS, "le": "0.64"}.items())))]
        assert len(read_exemplars(str(tmp_path), not_before=now - 500)) == 2
    finally:
        table.close()


def test_a_half_written_entry_is_skipped_not_misread(tmp_path: Path) -> None:
    """A reader that meets an entry whose bytes do not match its checksum (a write in progress in another
    process) leaves it out instead of pairing one call's trace id with another's value."""
    now = time.time()
    table = ExemplarTable(str(tmp_path))
    try:
        table.slot(DURATION, LABELS).write(_exemplar("a", 0.3, now))
        table.slot(DURATION, {**LABELS, "le": "0.64"}).write(_exemplar("b", 0.5, now))
        assert table.path is not None
        with open(table.path, "r+b") as f:  # the first entry's value, as a concurrent write would leave it
            f.seek(HEADER_BYTES + 8)
            f.write(b"\x01\x02\x03")
        found = read_exemplars(str(tmp_path), not_before=now - 60)
    finally:
        table.close()
    assert KEY not in found and len(found) == 1


WRITER = """
    import sys, time
    from prometheus_client.samples import Exemplar
    from llmmetrics.exemplars import ExemplarTable
    table = ExemplarTable(sys.argv[1])
    key = {"provider": "openai", "model": "m-%d", "operation": "chat", "status": "ok", "le": "0.32"}
    assert table.slot("llm_request_duration_seconds_bucket", key).write(
        Exemplar({"trace_id": "%s" * 32, "span_id": "%s" * 16}, 0.3, time.time()))
    print(table.path)
"""


def test_a_dead_workers_table_is_taken_over_and_its_exemplars_stay(tmp_path: Path) -> None:
    """Workers that start after others died reuse their files (the kernel released their locks): five pids
    in turn leave one file, holding every one of their exemplars until the horizon."""
    paths = {_run(WRITER % (i, "abcde"[i], "abcde"[i]), tmp_path).strip() for i in range(5)}
    assert len(paths) == 1 and len(list(tmp_path.iterdir())) == 1
    found = read_exemplars(str(tmp_path), not_before=time.time() - 60)
    assert sorted(e.labels["trace_id"][0] for e in found.values()) == list("abcde")


def test_a_live_worker_keeps_its_table_and_a_forked_child_claims_its_own(tmp_path: Path) -> None:
    """While a worker lives its file is its own: a forked child (gunicorn forks its workers) writes to
    another file, and both exemplars are read."""
    out = _run("""
        import os, sys, time
        from prometheus_client.samples import Exemplar
        from llmmetrics.exemplars import ExemplarTable
        table = ExemplarTable(sys.argv[1])
        def write(model, trace):
            labels = {"model": model, "le": "0.32"}
            assert table.slot("llm_request_duration_seconds_bucket", labels).write(
                Exemplar({"trace_id": trace * 32, "span_id": trace * 16}, 0.3, time.time()))
        write("parent", "p")
        child = os.fork()
        if child == 0:
            write("child", "c")
            print("child", table.path, flush=True)
            os._exit(0)
        os.waitpid(child, 0)
        write("parent-again", "q")
        print("parent", table.path, flush=True)
    """, tmp_path)
    paths = dict(line.split() for line in out.splitlines())
    assert paths["child"] != paths["parent"]
    found = read_exemplars(str(tmp_path), not_before=time.time() - 60)
    assert sorted(dict(labels)["model"] for _, labels in found) == ["child", "parent", "parent-again"]


def test_a_table_grows_to_its_bound_and_refuses_beyond(tmp_path: Path) -> None:
    """Keys are added by doubling the file up to ``max_entries``; past it ``write`` returns False (the
    metrics hook counts it) and the file stays at its bound."""
    table = ExemplarTable(str(tmp_path), max_entries=512)
    try:
        results = [table.slot(DURATION, {**LABELS, "model": f"m-{i}"}).write(_exemplar("a", 0.3, time.time()))
                   for i in range(600)]
        assert results == [True] * 512 + [False] * 88
        assert table.path is not None
        assert os.path.getsize(table.path) == HEADER_BYTES + 512 * ENTRY_BYTES
        assert len(read_exemplars(str(tmp_path), not_before=0.0)) == 512
    finally:
        table.close()


def test_foreign_files_are_ignored_or_reinitialised(tmp_path: Path) -> None:
    """A table file of another layout (an older version, garbage) is never read, and the worker that
    claims it starts it afresh."""
    (tmp_path / "llmmetrics_exemplars_0.mmap").write_bytes(b"not a table" * 100)
    assert read_exemplars(str(tmp_path), not_before=0.0) == {}
    table = ExemplarTable(str(tmp_path))
    try:
        assert table.slot(DURATION, LABELS).write(_exemplar("a", 0.3, time.time()))
        assert table.path is not None and table.path.endswith("llmmetrics_exemplars_0.mmap")
        assert list(read_exemplars(str(tmp_path), not_before=0.0)) == [KEY]
    finally:
        table.close()


def test_only_w3c_sized_ids_are_shared(tmp_path: Path) -> None:
    """An id longer than 32/16 characters is refused rather than cut into a link to some other trace."""
    table = ExemplarTable(str(tmp_path))
    try:
        assert not table.slot(DURATION, LABELS).write(Exemplar({"trace_id": "a" * 40, "span_id": "b" * 16}, 0.3, 1.0))
        assert read_exemplars(str(tmp_path), not_before=0.0) == {}
    finally:
        table.close()
