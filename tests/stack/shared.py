"""The repository's own files and the schemas vendored beside these tests (``tests/stack/schemas/``)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = Path(__file__).resolve().parent / "schemas"


@cache
def load_schema(relative: str) -> dict[str, Any]:
    """A JSON schema from ``tests/stack/schemas/`` by relative path (e.g. ``grafana/dashboard.jsonschema.json``)."""
    return json.loads((SCHEMAS / relative).read_text(encoding="utf-8"))
