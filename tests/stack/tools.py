"""Locate the Prometheus/Alertmanager binaries the stack tests run; fail with install instructions if absent."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

_PACKAGES = {
    "promtool": "prometheus",
    "prometheus": "prometheus",
    "amtool": "prometheus-alertmanager",
    "prometheus-alertmanager": "prometheus-alertmanager",
}


def binary(name: str) -> str:
    """Absolute path of ``name``; fails the test (never skips) when it is not installed."""
    path = shutil.which(name)
    if path is None:
        package = _PACKAGES[name]
        pytest.fail(f"`{name}` not found: install the Debian package {package} "
                    f"(apt-get install -y {package}) and re-run the tests", pytrace=False)
    return path


def run(args: list[str], cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a tool, returning its result (callers assert on returncode and show stdout/stderr)."""
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
