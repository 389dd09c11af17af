"""A pytest plugin that ends the run with the real servers each test ran on: how many tests, which version.

The lookups come from ``tests.support.binaries`` (every ``binary(name)`` call is recorded with the test that
made it), so the summary is what happened, not what was configured.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import binaries


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    binaries.current_test = item.nodeid
    try:
        return (yield)
    finally:
        binaries.current_test = None


def pytest_terminal_summary(terminalreporter: Any) -> None:
    tests: dict[tuple[str, str, str], set[str]] = {}
    for test, name, path, version in binaries.USED:
        tests.setdefault((name, version, path), set()).add(test or "(collection)")
    if not tests:
        return
    users = set().union(*tests.values())
    terminalreporter.section("real servers and tools")
    terminalreporter.line(f"{len(users)} tests ran real servers or their tools:")
    for (name, version, path), names in sorted(tests.items()):
        terminalreporter.line(f"  {name:<14} {version:<8} {len(names):>4} tests  {path}")
