"""Latency percentiles within 1 % of the exact nearest-rank value, in constant memory, mergeable."""

from __future__ import annotations

import math
import random

import pytest

from llmmetrics.report.quantiles import RELATIVE_ACCURACY, LatencySketch


def exact(values: list[float], q: float) -> float:
    return sorted(values)[max(1, math.ceil(q * len(values))) - 1]


@pytest.mark.parametrize("q", [0.01, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0])
def test_quantile_within_one_percent_of_the_exact_one(q: float) -> None:
    """Over 50,000 lognormal latencies (2 ms to minutes) every quantile is within 1 % of the sorted answer."""
    rng = random.Random(3)
    values = [rng.lognormvariate(6.5, 1.4) for _ in range(50_000)] + [2.0, 0.0]
    sketch = LatencySketch()
    for value in values:
        sketch.add(value)
    expected = exact(values, q)
    assert sketch.quantile(q) == pytest.approx(expected, rel=RELATIVE_ACCURACY, abs=1e-9)


def test_bins_stay_few_whatever_the_count() -> None:
    """A million calls between 1 ms and 10 min need at most a few hundred bins."""
    rng = random.Random(4)
    sketch = LatencySketch()
    for _ in range(1_000_000):
        sketch.add(10 ** rng.uniform(0, 5.8))
    assert sketch.count == 1_000_000
    assert len(sketch.bins) <= 700


def test_merged_sketches_answer_as_one() -> None:
    """Two buckets merged give the quantiles of all their calls together (what a wider bucket needs)."""
    rng = random.Random(5)
    left, right, both = LatencySketch(), LatencySketch(), LatencySketch()
    for index in range(10_000):
        value = rng.expovariate(1 / 800)
        (left if index % 3 else right).add(value)
        both.add(value)
    left.merge(right)
    assert [left.quantile(q) for q in (0.5, 0.95, 0.99)] == [both.quantile(q) for q in (0.5, 0.95, 0.99)]


def test_empty_and_zero_latencies() -> None:
    """No calls: no quantile (not 0); calls at 0 ms answer 0."""
    sketch = LatencySketch()
    assert sketch.quantile(0.95) is None
    sketch.add(0.0)
    assert sketch.quantile(0.95) == 0.0
