"""The instrumented Anthropic clients of tests/conftest.py, by whether they are async."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def claudes(claude: Any, async_claude: Any) -> dict[bool, Any]:
    return {False: claude, True: async_claude}
