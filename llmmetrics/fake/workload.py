"""How the fake model behaves: how long it takes (:class:`LatencyModel`), how it fails (:class:`FaultPlan`),
and what is decided about each request when it arrives (:class:`Draw`, made by :class:`Workload`).

Everything random about a request is drawn from one seeded generator at arrival, in arrival order, so a seeded
server gives the same answers, delays and faults for the same request sequence however the requests are
scheduled afterwards.

>>> plan = FaultPlan(rate_limit=0.1)
>>> plan.draw(0.05), plan.draw(0.5)
('rate_limit', None)
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

__all__ = ["FAULT_HEADER", "FAULT_NAMES", "Draw", "FaultPlan", "LatencyModel", "Workload"]

FAULT_HEADER = "x-fake-fault"
"""Request header that forces one request's outcome; its values are :data:`FAULT_NAMES` or ``"none"``."""

FAULT_NAMES: tuple[str, ...] = (
    "rate_limit", "server_error", "timeout", "invalid_json", "missing_usage", "bad_request",
    "overloaded", "stream_error", "reset", "stall",
)
"""Every fault the server can inject, in the order the plan's shares are laid end to end (new faults go last, so
a seeded plan that uses only the older ones fails the same requests as before)."""


@dataclass(frozen=True)
class LatencyModel:
    """How long answers take: time to first token, then a per-token pace, with jitter and rare slow calls.

    Each range is ``(low, high)`` seconds, drawn uniformly per request. A *slow* call (a ``slow_share`` of
    requests) adds ``slow_extra_seconds`` to the time to first token, so dashboards and alerts about slow
    calls have something to show. The defaults are the demo's profile; :meth:`none` is for tests and
    benchmarks.

    >>> LatencyModel.none().is_zero
    True
    """

    time_to_first_token: tuple[float, float] = (0.15, 0.6)
    per_token: tuple[float, float] = (0.005, 0.015)
    slow_share: float = 0.02
    slow_extra_seconds: tuple[float, float] = (3.0, 6.0)

    def __post_init__(self) -> None:
        for name in ("time_to_first_token", "per_token", "slow_extra_seconds"):
            low, high = getattr(self, name)
            if not (0 <= low <= high and math.isfinite(high)):
                raise ValueError(f"LatencyModel.{name} must be (low, high) with 0 <= low <= high, got {(low, high)}")
        if not 0 <= self.slow_share <= 1:
            raise ValueError(f"LatencyModel.slow_share must be within 0..1, got {self.slow_share}")

    @classmethod
    def none(cls) -> LatencyModel:
        """No delay at all: answers as fast as the socket allows."""
        return cls(time_to_first_token=(0.0, 0.0), per_token=(0.0, 0.0), slow_share=0.0, slow_extra_seconds=(0.0, 0.0))

    @property
    def is_zero(self) -> bool:
        """True when no request can ever wait, so the server skips drawing delays."""
        return self.time_to_first_token[1] == 0 and self.per_token[1] == 0 and (
            self.slow_share == 0 or self.slow_extra_seconds[1] == 0
        )


@dataclass(frozen=True)
class FaultPlan:
    """Shares (0..1) of requests that fail in each way; the rest succeed. Shares must add up to at most 1.

    ``timeout_seconds`` is how long a ``timeout`` or ``stall`` fault holds the answer back before going on
    normally: set it above the client's timeout. ``retry_after_seconds`` is what a 429 tells the client to wait.

    >>> FaultPlan(rate_limit=0.1).total
    0.1
    """

    rate_limit: float = 0.0
    server_error: float = 0.0
    timeout: float = 0.0
    invalid_json: float = 0.0
    missing_usage: float = 0.0
    bad_request: float = 0.0
    overloaded: float = 0.0
    stream_error: float = 0.0
    reset: float = 0.0
    stall: float = 0.0
    timeout_seconds: float = 30.0
    retry_after_seconds: float = 1.0

    def __post_init__(self) -> None:
        for name in FAULT_NAMES:
            share = getattr(self, name)
            if not 0 <= share <= 1:
                raise ValueError(f"FaultPlan.{name} must be a share within 0..1, got {share}")
        if self.total > 1 + 1e-9:
            raise ValueError(f"FaultPlan shares add up to {self.total:.3f}; they must add up to at most 1")
        if not (0 <= self.timeout_seconds and math.isfinite(self.timeout_seconds)):
            raise ValueError(f"FaultPlan.timeout_seconds must be a finite number >= 0, got {self.timeout_seconds}")
        if not (0 <= self.retry_after_seconds and math.isfinite(self.retry_after_seconds)):
            raise ValueError(f"FaultPlan.retry_after_seconds must be finite and >= 0, got {self.retry_after_seconds}")

    @property
    def total(self) -> float:
        """Share of requests that get any fault."""
        return sum(getattr(self, name) for name in FAULT_NAMES)

    @classmethod
    def with_error_rate(cls, rate: float, **overrides: float) -> FaultPlan:
        """Spread ``rate`` over every fault the way a provider's bad day looks: mostly 429s and 5xx.

        Weights: rate_limit 30 %, server_error 20 %, overloaded 10 %, timeout 10 %, missing_usage 10 %,
        bad_request 5 %, invalid_json 5 %, stream_error 4 %, reset 3 %, stall 3 %. ``overrides`` set any
        field, a fault's share included.
        """
        if not 0 <= rate <= 1:
            raise ValueError(f"error rate must be within 0..1, got {rate}")
        weights = {"rate_limit": 0.30, "server_error": 0.20, "overloaded": 0.10, "timeout": 0.10,
                   "missing_usage": 0.10, "bad_request": 0.05, "invalid_json": 0.05, "stream_error": 0.04,
                   "reset": 0.03, "stall": 0.03}
        return cls(**{**{name: rate * weight for name, weight in weights.items()}, **overrides})

    def draw(self, u: float) -> str | None:
        """The fault for a uniform draw ``u`` in [0, 1), or None for success."""
        edge = 0.0
        for name in FAULT_NAMES:
            edge += getattr(self, name)
            if u < edge:
                return name
        return None


@dataclass
class Draw:
    """Everything random about one request, drawn at arrival so a seeded run does not depend on timing.

    ``rng`` is the request's own generator (seeded from the server's), for the answer's text and tool arguments.
    """

    fault: str | None
    first_token_delay: float
    per_token_delay: float
    answer_tokens: int
    rng: random.Random
    stall_seconds: float = 0.0
    retry_after_seconds: float = 1.0


class Workload:
    """The server's model of the fake LLM: latency, fault plan, answer lengths and the seeded generator.

    Only the server's event-loop thread draws; :attr:`faults` may be replaced from any thread (an attribute
    assignment), and the next request to arrive uses the new plan.
    """

    def __init__(self, *, latency: LatencyModel, faults: FaultPlan, seed: int | None,
                 answer_tokens: tuple[int, int], embedding_dimensions: int) -> None:
        if not 1 <= answer_tokens[0] <= answer_tokens[1]:
            raise ValueError(f"answer_tokens must be (low, high) with 1 <= low <= high, got {answer_tokens}")
        if embedding_dimensions < 1:
            raise ValueError(f"embedding_dimensions must be >= 1, got {embedding_dimensions}")
        self.latency = latency
        self.faults = faults
        self.answer_tokens = answer_tokens
        self.embedding_dimensions = embedding_dimensions
        self._rng = random.Random(seed)

    def draw(self, forced: str | None) -> Draw | str:
        """The next request's decisions; ``forced`` is its fault header. Returns an error message when the header
        names no fault."""
        rng = random.Random(self._rng.getrandbits(64))
        faults = self.faults
        if forced is not None:
            if forced != "none" and forced not in FAULT_NAMES:
                return f"Unknown {FAULT_HEADER} value {forced!r}; expected one of {', '.join(FAULT_NAMES + ('none',))}"
            fault = None if forced == "none" else forced
        else:
            fault = faults.draw(rng.random()) if faults.total else None
        latency = self.latency
        first = per_token = 0.0
        if not latency.is_zero:
            first = rng.uniform(*latency.time_to_first_token)
            if latency.slow_share and rng.random() < latency.slow_share:
                first += rng.uniform(*latency.slow_extra_seconds)
            per_token = rng.uniform(*latency.per_token)
        answer = rng.randint(*self.answer_tokens)
        return Draw(fault, first, per_token, answer, rng, faults.timeout_seconds, faults.retry_after_seconds)
