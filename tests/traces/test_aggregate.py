"""The totals behind ``--sum``/``--by`` and the report: exact sums in constant memory, groups fed one record at a time."""

from __future__ import annotations

import math
import random
import sys

from llmmetrics.traces.aggregate import Aggregation, ExactSum, Group, aggregate


def test_exact_sum_is_fsum_whatever_the_order() -> None:
    """ExactSum gives math.fsum's correctly rounded sum, in every order, where a plain float sum drifts."""
    rng = random.Random(7)
    values = [rng.lognormvariate(-8, 3) * rng.choice((1, -1)) for _ in range(20_000)] + [1e16, 1.0, -1e16]
    expected = math.fsum(values)
    assert sum(values) != expected  # the case that needs exactness at all
    for _ in range(3):
        rng.shuffle(values)
        total = ExactSum()
        for value in values:
            total.add(value)
        assert total.value == expected
        assert total.count == len(values)


def test_exact_sum_takes_ints_and_merges() -> None:
    """Integers (token counts) add exactly, and two partial sums merge into the sum of both."""
    left, right = ExactSum(), ExactSum()
    for value in (3, 10**18, 0.5):
        left.add(value)
    for value in (-(10**18), 0.25):
        right.add(value)
    left.merge(right)
    assert (left.value, left.count) == (3.75, 5)


def test_exact_sum_memory_does_not_grow_with_values() -> None:
    """A million values leave the sum as small as a few: nothing per value is kept."""
    total = ExactSum()
    total.add(0.1)
    small = sys.getsizeof(total._units)
    for _ in range(1_000_000):
        total.add(0.1)
    assert sys.getsizeof(total._units) <= small + 8  # at most one more 30-bit digit for the larger total


def test_aggregation_fed_one_record_at_a_time_is_aggregate() -> None:
    """Feeding records to Aggregation.add gives the groups aggregate() gives, unpriced successes counted apart."""
    records = [
        {"model": "a", "cost_usd": 0.5, "status": "success"},
        {"model": "a", "cost_usd": None, "status": "success"},
        {"model": "b", "cost_usd": None, "status": "error"},
        {"model": "b", "cost_usd": 0.25, "status": "success"},
        {"model": None, "cost_usd": 1, "status": "success"},
    ]
    fed = Aggregation("cost", "model")
    for record in records:
        fed.add(record)
    streamed, batch = fed.groups(), aggregate(records, "cost", "model")
    summary = [(g.key, g.records, g.total, g.missing, g.missing_successes, g.average) for g in streamed]
    assert summary == [(g.key, g.records, g.total, g.missing, g.missing_successes, g.average) for g in batch]
    assert summary == [("(none)", 1, 1.0, 0, 0, 1.0), ("a", 2, 0.5, 1, 1, 0.5), ("b", 2, 0.25, 1, 0, 0.25)]
    total = Group.combined("TOTAL", streamed)
    assert (total.records, total.total, total.missing, total.missing_successes) == (5, 1.75, 2, 1)
