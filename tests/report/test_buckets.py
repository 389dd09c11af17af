"""Time buckets: the width grows with the range as Grafana's $__interval, merges exactly, memory stays bounded."""

from __future__ import annotations

import random

import pytest

from llmmetrics.report.buckets import (LADDER, MAX_MODELS, MAX_POINTS, MIN_CALLS_PER_BUCKET, OTHER_MODELS, TimeBuckets,
                                       format_width)

S = 1_000_000_000


def fill(seconds: list[float], model: str = "gpt-4o-mini") -> TimeBuckets:
    buckets = TimeBuckets()
    for second in seconds:
        buckets.stats(int(second * S), model).add_call(latency_ms=100.0, failed=False, cost=0.001)
    return buckets


def test_ladder_widths_divide_each_other() -> None:
    """Each width is a whole multiple of the one before, so merging buckets never splits one."""
    assert all(wider % narrower == 0 for narrower, wider in zip(LADDER, LADDER[1:]))


@pytest.mark.parametrize(("span_s", "width_s"), [(60, 1), (3600, 30), (6 * 3600, 300), (86400, 600),
                                                 (7 * 86400, 3600), (30 * 86400, 6 * 3600)])
def test_width_is_the_smallest_that_draws_the_range(span_s: int, width_s: int) -> None:
    """The width is the smallest on the ladder giving at most MAX_POINTS buckets over the covered range."""
    start = 1_800_000_000
    buckets = fill([start + span_s * i / 999 for i in range(1000)])
    assert buckets.width_seconds == width_s
    assert len(list(buckets.indices())) <= MAX_POINTS
    narrower = LADDER[LADDER.index(width_s) - 1] if width_s != LADDER[0] else None
    if narrower is not None:
        assert (start + span_s) // narrower - start // narrower + 1 > MAX_POINTS


def test_order_of_arrival_does_not_change_the_buckets() -> None:
    """Records oldest first (files) or newest first (Loki) end in the same buckets with the same counts."""
    rng = random.Random(1)
    seconds = sorted(rng.uniform(1_800_000_000, 1_800_000_000 + 5 * 3600) for _ in range(5000))
    forward, backward = fill(seconds), fill(list(reversed(seconds)))
    assert forward.width_seconds == backward.width_seconds
    counts = {i: b["gpt-4o-mini"].calls for i, b in forward.buckets.items()}
    assert counts == {i: b["gpt-4o-mini"].calls for i, b in backward.buckets.items()}
    assert sum(counts.values()) == 5000


def test_sparse_traffic_settles_in_wider_buckets() -> None:
    """A minute at 4 calls/s is drawn in 5 s buckets (about 20 calls each), not 1 s ones."""
    buckets = fill([1_800_000_000 + i / 4 for i in range(240)])
    assert buckets.width_seconds == 1
    buckets.settle()
    assert buckets.width_seconds == 5
    assert sum(s.calls for b in buckets.buckets.values() for s in b.values()) == 240
    assert min(sum(s.calls for s in b.values()) for b in buckets.buckets.values()) >= MIN_CALLS_PER_BUCKET


def test_settling_keeps_enough_points() -> None:
    """Ten calls over a minute stay in buckets of at most 5 s: never fewer than MIN_POINTS points to draw."""
    buckets = fill([1_800_000_000 + 6 * i for i in range(11)])
    buckets.settle()
    assert len(list(buckets.indices())) >= 10


def test_models_past_the_cap_are_counted_as_other() -> None:
    """Past MAX_MODELS distinct models, calls still count, under 'other' (as the metrics' max_models)."""
    buckets = TimeBuckets()
    for index in range(MAX_MODELS + 5):
        buckets.stats(1_800_000_000 * S, f"model-{index}").add_call(latency_ms=1.0, failed=True, cost=None)
    assert len(buckets.models) == MAX_MODELS + 1
    assert buckets.models[OTHER_MODELS] == 5


def test_a_broken_clock_does_not_explode_memory() -> None:
    """A record stamped 1970 next to today's widens the buckets (drawn, bounded), it never makes millions."""
    buckets = fill([0.0, 1_800_000_000.0])
    assert len(list(buckets.indices())) <= MAX_POINTS
    assert buckets.width_seconds > LADDER[-1]


def test_width_reads_as_a_person_says_it() -> None:
    """Widths are written in the largest whole unit."""
    assert [format_width(s) for s in (1, 30, 60, 300, 3600, 10800, 86400, 604800)] == [
        "1 s", "30 s", "1 min", "5 min", "1 h", "3 h", "1 d", "7 d"]
