"""The private-file rule: created with exactly the mode whatever the umask; existing files tightened, never loosened."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from llmmetrics.private_files import PRIVATE_FILE_MODE, open_private, restrict_mode
from tests.support.files import mode_of, umask

APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT


def test_a_new_file_is_0600_under_the_usual_umask(tmp_path: Path) -> None:
    """Under umask 022 (which leaves 0644 to a plain open) a created file is owner-only."""
    with umask(0o022):
        os.close(open_private(tmp_path / "t.jsonl", APPEND))
        with open(tmp_path / "plain.jsonl", "ab"):
            pass
    assert mode_of(tmp_path / "t.jsonl") == PRIVATE_FILE_MODE == 0o600
    assert mode_of(tmp_path / "plain.jsonl") == 0o644  # what the sink used to create


@pytest.mark.parametrize("mask", [0o000, 0o077, 0o277])
def test_a_new_file_gets_exactly_the_mode_asked_whatever_the_umask(tmp_path: Path, mask: int) -> None:
    """A chosen 0640 survives a umask that removes group bits, and 0277 cannot leave an unwritable file."""
    with umask(mask):
        os.close(open_private(tmp_path / "group.jsonl", APPEND, 0o640))
        os.close(open_private(tmp_path / "private.jsonl", APPEND))
    assert mode_of(tmp_path / "group.jsonl") == 0o640
    assert mode_of(tmp_path / "private.jsonl") == 0o600


def test_an_existing_looser_file_is_tightened_and_keeps_its_content(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """A 0644 file (an older version's, or chmod by hand) is reopened 0600, appended to, and the change logged."""
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"old\n")
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="llmmetrics"):
        fd = open_private(path, APPEND)
    os.write(fd, b"new\n")
    os.close(fd)
    assert mode_of(path) == 0o600
    assert path.read_bytes() == b"old\nnew\n"
    assert "from mode 0644 to 0600" in caplog.text


@pytest.mark.parametrize("existing,configured,expected", [
    (0o600, 0o640, 0o600),  # the user made it tighter than configured: never loosened
    (0o620, 0o640, 0o600),  # group write is not allowed by 0640: removed; group read is not added
    (0o660, 0o640, 0o640),
    (0o640, 0o640, 0o640),
])
def test_an_existing_file_keeps_only_bits_the_mode_allows(tmp_path: Path, existing: int, configured: int,
                                                          expected: int) -> None:
    """Reopening intersects the file's mode with the configured one: tighter stays tighter, extra bits go."""
    path = tmp_path / "t.jsonl"
    path.touch()
    path.chmod(existing)
    os.close(open_private(path, APPEND, configured))
    assert mode_of(path) == expected


def test_it_is_an_opener_for_the_builtin_open(tmp_path: Path) -> None:
    """open(path, "w", opener=open_private) truncates, and makes an existing 0644 report private."""
    path = tmp_path / "report.html"
    path.write_text("old and long")
    path.chmod(0o644)
    with umask(0o022), open(path, "w", opener=open_private) as report:
        report.write("new")
    assert path.read_text() == "new" and mode_of(path) == 0o600


def test_without_o_creat_a_missing_file_is_an_error(tmp_path: Path) -> None:
    """Only O_CREAT creates: opening a missing file for reading raises as os.open does."""
    with pytest.raises(FileNotFoundError):
        open_private(tmp_path / "missing", os.O_RDONLY)


def test_pipes_and_devices_are_left_alone(tmp_path: Path) -> None:
    """A FIFO (like /dev/stdout in a container) is written to as is: its mode is not llmmetrics' to change."""
    fifo = tmp_path / "records.fifo"
    os.mkfifo(fifo, 0o644)
    fd = open_private(fifo, os.O_RDWR | os.O_CREAT)  # O_RDWR: a FIFO opened for writing only would wait for a reader
    os.close(fd)
    assert mode_of(fifo) == 0o644


def test_restrict_mode_takes_a_path(tmp_path: Path) -> None:
    """restrict_mode on a path (a rotated backup found at start) removes the bits the mode does not allow."""
    backup = tmp_path / "t.jsonl.1"
    backup.touch()
    backup.chmod(0o666)
    restrict_mode(backup)
    assert mode_of(backup) == 0o600
