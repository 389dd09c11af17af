"""Latency quantiles within 1 % in constant memory, for the report's p50/p95/p99 and its p95 panel.

An exact p95 needs every latency kept until the end; a report over a million calls, per model and per time
bucket, must not. Latencies are counted in logarithmic bins instead (the mapping of DDSketch, Masson et al.,
VLDB 2019): bin ``k`` holds the values in ``(γ^(k-1), γ^k]`` and answers with one value of that range that
is within ``RELATIVE_ACCURACY`` of every value in it. A quantile is then within 1 % of the exact
nearest-rank quantile (the value at rank ``ceil(q * n)``), whatever the number of calls; a few hundred bins
cover 1 ms to an hour. Sketches of two buckets merge by adding their counts.

>>> sketch = LatencySketch()
>>> for ms in range(1, 1001):
...     sketch.add(float(ms))
>>> abs(sketch.quantile(0.95) - 950) <= 950 * RELATIVE_ACCURACY
True
"""

from __future__ import annotations

import math

__all__ = ["RELATIVE_ACCURACY", "LatencySketch"]

RELATIVE_ACCURACY = 0.01
_GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_INVERSE_LOG_GAMMA = 1 / math.log(_GAMMA)
#: the value answered for bin k is γ^k · this: the point of (γ^(k-1), γ^k] at most α from both ends
_REPRESENTATIVE = 2 / (1 + _GAMMA)
#: latencies at or below this (ms) count as zero: no clock reads finer
_SMALLEST_MS = 1e-3


class LatencySketch:
    """Counts of latencies (milliseconds) per logarithmic bin; ``quantile`` answers within 1 %."""

    __slots__ = ("bins", "count", "zeros")

    def __init__(self) -> None:
        self.bins: dict[int, int] = {}
        self.count = 0
        self.zeros = 0

    def add(self, ms: float) -> None:
        self.count += 1
        if ms > _SMALLEST_MS:
            key = math.ceil(math.log(ms) * _INVERSE_LOG_GAMMA)
            self.bins[key] = self.bins.get(key, 0) + 1
        else:
            self.zeros += 1

    def merge(self, other: LatencySketch) -> None:
        self.count += other.count
        self.zeros += other.zeros
        bins = self.bins
        for key, count in other.bins.items():
            bins[key] = bins.get(key, 0) + count

    def quantile(self, q: float) -> float | None:
        """The nearest-rank ``q`` quantile (0 < q <= 1) within 1 %, or None without values."""
        if not self.count:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = self.zeros
        if seen >= rank:
            return 0.0
        for key in sorted(self.bins):
            seen += self.bins[key]
            if seen >= rank:
                break
        return _GAMMA ** key * _REPRESENTATIVE  # the bins add up to count >= rank: the loop broke
