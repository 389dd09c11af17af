"""File permission helpers for the tests of private files: a process umask set for one block, a file's mode."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

__all__ = ["mode_of", "modes", "umask"]


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    """Run the block under ``mask`` (``0o022`` is the usual login default), then restore the previous one."""
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def mode_of(path: str | os.PathLike[str]) -> int:
    """The permission bits of ``path`` (``0o600``)."""
    return stat.S_IMODE(os.stat(path).st_mode)


def modes(directory: Path, pattern: str = "*") -> dict[str, int]:
    """Permission bits of every file in ``directory`` matching ``pattern``, by name."""
    return {p.name: mode_of(p) for p in sorted(directory.glob(pattern)) if p.is_file()}
