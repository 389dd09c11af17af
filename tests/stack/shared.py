"""Where the tests find the shared, read-only schemas and the repository's own files.

In CI the shared material sits at ``../shared`` next to the repository clone; ``LLMMETRICS_SHARED_DIR``
overrides that. A missing directory fails the test that needs it, with instructions.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    """The shared schemas directory's parent (``<repo>/../shared`` unless ``LLMMETRICS_SHARED_DIR`` is set)."""
    configured = os.environ.get("LLMMETRICS_SHARED_DIR")
    path = Path(configured) if configured else (REPO / ".." / "shared").resolve()
    if not (path / "schemas").is_dir():
        pytest.fail(
            f"shared schemas not found at {path / 'schemas'}: check out the shared material next to the repository "
            "(../shared) or set LLMMETRICS_SHARED_DIR to the directory that holds schemas/", pytrace=False)
    return path


@cache
def load_schema(relative: str) -> dict[str, Any]:
    """A JSON schema from ``shared/schemas/`` by relative path."""
    return json.loads((shared_dir() / "schemas" / relative).read_text(encoding="utf-8"))
