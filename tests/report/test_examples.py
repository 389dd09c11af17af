"""The runnable examples in the report's module docstrings (and the totals they rest on) run and hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["llmmetrics.report.buckets", "llmmetrics.report.charts", "llmmetrics.report.data",
           "llmmetrics.report.panels", "llmmetrics.report.quantiles", "llmmetrics.traces.aggregate"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    """Each example gives the output its docstring shows."""
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
