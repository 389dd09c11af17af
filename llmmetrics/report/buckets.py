"""Calls counted into time buckets per model, the bucket width chosen from the range as Grafana's ``$__interval``.

Grafana divides a panel's time range by the most points it will draw and rounds up to a whole interval.
The report does the same over the range its records cover, which is known only once the scan is over: it
starts at one second and, whenever the buckets would span more than :data:`MAX_POINTS`, moves up the
:data:`LADDER` to the next width and merges buckets. Each width is a whole multiple of the one before (and
buckets are aligned to the epoch, as Prometheus aligns steps), so a merge is exact, and the width at the
end is the smallest on the ladder that draws the covered range in at most ``MAX_POINTS`` points: an hour
in 30 s buckets, six hours in 5 min, a week in 1 h. Sparse traffic then widens them further (``settle``),
as Grafana's ``$__rate_interval`` is never below four scrape intervals: a bucket should hold about 20 calls,
as long as 10 points remain, so a minute of demo traffic is drawn in 5 s buckets, not in noisy 1 s ones.
Memory is bounded by ``MAX_POINTS`` buckets × :data:`MAX_MODELS` models, whatever the number of records.

>>> series = TimeBuckets()
>>> for second in range(600):                            # ten minutes, one call a second
...     series.stats(second * 10**9, "gpt-4o-mini").add_call(latency_ms=800.0, failed=False, cost=0.0001)
>>> series.width_seconds, len(series.buckets)
(5, 120)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from ..traces.aggregate import ExactSum
from .quantiles import LatencySketch

__all__ = ["LADDER", "MAX_MODELS", "MAX_POINTS", "MIN_CALLS_PER_BUCKET", "MIN_POINTS", "OTHER_MODELS", "ModelStats", "TimeBuckets", "format_width"]

#: Bucket widths in seconds, each a multiple of the one before; all are among Grafana's rounded intervals.
LADDER = (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)
#: At most this many buckets per series: a panel draws between a fifth of it and all of it.
MAX_POINTS = 180
#: A bucket should hold this many calls on average (one failure in it is then a 5 % error rate) …
MIN_CALLS_PER_BUCKET = 20
#: … unless widening it would leave fewer points than this.
MIN_POINTS = 10
#: Models charted one by one; calls of models seen later are counted as OTHER_MODELS (as the metrics' max_models).
MAX_MODELS = 12
OTHER_MODELS = "other"

_NS = 1_000_000_000


@dataclasses.dataclass(slots=True)
class ModelStats:
    """One model's calls in one bucket: what the four panels are computed from."""

    calls: int = 0
    errors: int = 0
    #: cost of the priced calls (``cost.count`` of them); a call without a cost is never added as $0
    cost: ExactSum = dataclasses.field(default_factory=ExactSum)
    #: successful calls without a cost: a model missing from the price table, or no usage in the answer
    unpriced: int = 0
    latency: LatencySketch = dataclasses.field(default_factory=LatencySketch)

    def add_call(self, *, latency_ms: float | None, failed: bool, cost: float | None) -> None:
        self.calls += 1
        if failed:
            self.errors += 1
        if cost is not None:
            self.cost.add(cost)
        elif not failed:
            self.unpriced += 1
        if latency_ms is not None:
            self.latency.add(latency_ms)

    def merge(self, other: ModelStats) -> None:
        self.calls += other.calls
        self.errors += other.errors
        self.cost.merge(other.cost)
        self.unpriced += other.unpriced
        self.latency.merge(other.latency)


class TimeBuckets:
    """``ModelStats`` per (bucket, model), the bucket width growing with the range the calls cover."""

    def __init__(self) -> None:
        self._rung = 0
        self.width_ns = LADDER[0] * _NS
        #: bucket index (start time // width) → model → stats
        self.buckets: dict[int, dict[str, ModelStats]] = {}
        self._low: int | None = None
        self._high: int | None = None
        self.models: dict[str, int] = {}  # charted model → calls, in the order first seen

    @property
    def width_seconds(self) -> int:
        return self.width_ns // _NS

    def stats(self, ts_ns: int, model: str) -> ModelStats:
        """The stats a call of ``model`` starting at ``ts_ns`` is counted in."""
        index = ts_ns // self.width_ns
        if self._low is None or not self._low <= index <= self._high:  # type: ignore[operator]
            index = self._widen(ts_ns)
        if model not in self.models:
            model = model if len(self.models) < MAX_MODELS else OTHER_MODELS
            self.models.setdefault(model, 0)
        self.models[model] += 1
        bucket = self.buckets.get(index)
        if bucket is None:
            bucket = self.buckets[index] = {}
        stats = bucket.get(model)
        if stats is None:
            stats = bucket[model] = ModelStats()
        return stats

    def _widen(self, ts_ns: int) -> int:
        """Take ``ts_ns`` into the range, moving to wider buckets while it would span too many."""
        while True:
            index = ts_ns // self.width_ns
            low = index if self._low is None else min(self._low, index)
            high = index if self._high is None else max(self._high, index)
            if high - low < MAX_POINTS:
                self._low, self._high = low, high
                return index
            self._rung += 1
            # past a week: keep doubling (records years apart come from a broken clock, but are still drawn)
            beyond = self._rung - len(LADDER) + 1
            seconds = LADDER[self._rung] if beyond <= 0 else LADDER[-1] * 2**beyond
            self._rebucket(seconds * _NS)

    def _rebucket(self, width_ns: int) -> None:
        factor = width_ns // self.width_ns
        merged: dict[int, dict[str, ModelStats]] = {}
        for index, bucket in self.buckets.items():
            target = merged.setdefault(index // factor, {})
            for model, stats in bucket.items():
                held = target.get(model)
                if held is None:
                    target[model] = stats
                else:
                    held.merge(stats)
        self.buckets = merged
        self.width_ns = width_ns
        if self._low is not None:
            self._low //= factor
            self._high //= factor  # type: ignore[operator]

    def settle(self) -> None:
        """Once every call is in: widen further while buckets hold fewer than :data:`MIN_CALLS_PER_BUCKET`
        calls on average, as long as :data:`MIN_POINTS` remain (a minute of demo traffic: 5 s, not 1 s)."""
        while self._rung + 1 < len(LADDER) and self._low is not None:
            calls = sum(stats.calls for bucket in self.buckets.values() for stats in bucket.values())
            wider = LADDER[self._rung + 1] * _NS
            points = self._high // (wider // self.width_ns) - self._low // (wider // self.width_ns) + 1  # type: ignore[operator]
            if calls >= MIN_CALLS_PER_BUCKET * len(self.buckets) or points < MIN_POINTS:
                return
            self._rung += 1
            self._rebucket(wider)

    def indices(self) -> Iterator[int]:
        """Every bucket from the first to the last, empty ones included (a gap is part of the picture)."""
        if self._low is not None:
            yield from range(self._low, self._high + 1)  # type: ignore[operator]

    def start_ns(self, index: int) -> int:
        return index * self.width_ns


def format_width(seconds: int) -> str:
    """``1 s``, ``5 min``, ``3 h``, ``1 d``: a bucket width as a person reads it."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"
