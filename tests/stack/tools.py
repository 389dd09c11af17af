"""Running the servers' own tools; binaries are found by ``tests.support.binaries.binary``."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.binaries import binary

__all__ = ["binary", "run"]


def run(args: list[str], cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a tool, returning its result (callers assert on returncode and show stdout/stderr)."""
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
