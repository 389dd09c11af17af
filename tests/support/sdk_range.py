"""An SDK's supported range, three places that must agree: pyproject.toml's requirement, the versions its
matrix script (scripts/<sdk>_matrix.sh) tests, and the docs page that names them."""

from __future__ import annotations

import re
from pathlib import Path

from packaging.version import Version

__all__ = ["assert_range_is_the_matrix", "declared_range"]

REPO = Path(__file__).resolve().parents[2]


def matrix_versions(script: str) -> list[Version]:
    text = (REPO / "scripts" / script).read_text()
    return [Version(v) for v in re.search(r"^VERSIONS=\(([^)]*)\)", text, re.M).group(1).split()]  # type: ignore[union-attr]


def declared_range(requirement: str) -> tuple[Version, Version]:
    """The bounds of ``"<requirement>>=LOW,<HIGH"`` in pyproject.toml."""
    pyproject = (REPO / "pyproject.toml").read_text()
    found = re.search(rf'"{re.escape(requirement)}>=([\d.]+),<([\d.]+)"', pyproject)
    assert found is not None, f"pyproject.toml declares no range for {requirement}"
    return Version(found.group(1)), Version(found.group(2))


def assert_range_is_the_matrix(requirement: str, script: str, doc: str) -> None:
    """The range starts at the matrix's oldest release and ends after its newest major, the matrix has a release
    of every major in between, and the doc names each tested release."""
    versions = matrix_versions(script)
    low, high = declared_range(requirement)
    assert min(versions) == low
    assert high == Version(f"{max(versions).major + 1}")
    assert {v.major for v in versions} == set(range(low.major, high.major))
    text = (REPO / "docs" / doc).read_text()
    assert all(f"`{v}`" in text for v in versions)
