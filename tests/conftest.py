"""Fixtures shared across test modules."""

from loki_helpers import harness, loki  # noqa: F401 (fixtures for the Loki sink tests)
