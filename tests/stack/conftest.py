"""Fixtures of the stack tests: each Prometheus line the rules and configs are checked on."""

from __future__ import annotations

import pytest

from tests.support.binaries import STACKS, Stack


@pytest.fixture(params=STACKS, ids=[s.name for s in STACKS])
def stack(request: pytest.FixtureRequest) -> Stack:
    """Prometheus 3.5 LTS with the pinned Alertmanager, then the Prometheus 2.x line (Debian bookworm's)."""
    return request.param
