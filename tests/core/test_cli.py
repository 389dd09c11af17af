"""The `llmmetrics` command itself: its version comes from one place, the package."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import llmmetrics

ROOT = Path(__file__).resolve().parents[2]


def test_version_has_one_source_of_truth() -> None:
    """`llmmetrics --version`, `llmmetrics.__version__` and the installed metadata agree, and pyproject.toml
    reads the version from the package instead of repeating it."""
    out = subprocess.run([sys.executable, "-m", "llmmetrics", "--version"], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out == f"llmmetrics {llmmetrics.__version__}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+", llmmetrics.__version__)
    assert importlib.metadata.version("llmmetrics") == llmmetrics.__version__
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and 'version = { attr = "llmmetrics.__version__" }' in pyproject
    assert not re.search(r'(?m)^version\s*=\s*"', pyproject)
