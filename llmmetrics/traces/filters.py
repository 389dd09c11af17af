"""One typed query for every trace filter, shared by the local-file scan and the LogQL builder.

The command line is parsed into a :class:`Query` once; the local scan compiles it into a predicate plus a
set of byte tokens that must appear in a matching line, and the Loki backend translates the same fields
into LogQL. Keeping one object guarantees both backends answer the same question.

>>> q = Query(status="error", min_latency_ms=3000)
>>> q.matches({"kind": "call", "status": "error", "latency_ms": 4200.0})
True
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar, TypeVar

from .rawjson import (
    TIME_KEY,
    Token,
    any_number_within,
    field_key,
    number_pattern,
    numbers_in,
)

T = TypeVar("T")

__all__ = [
    "Query",
    "QueryError",
    "Reversed",
    "SortOrder",
    "parse_cost",
    "parse_duration",
    "parse_latency_ms",
    "parse_time_ns",
    "path_getter",
]

KINDS = ("call", "run", "all")
STATUSES = ("success", "error")

#: Values made only of these characters are written verbatim by every JSON encoder (no escaping), so
#: their quoted form is a safe byte-level prefilter: a line without it cannot match.
_VERBATIM_JSON = re.compile(r"^[A-Za-z0-9 _.:@+\-]+$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ns|us|µs|ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0,
    "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0,
}


class QueryError(ValueError):
    """A filter value the user gave cannot be understood; the message says which and why."""


def parse_duration(text: str, *, default_unit: str = "s") -> timedelta:
    """Parse ``30m``, ``6h``, ``1d``, ``250ms``, ``1.5s``; a bare number takes ``default_unit``."""
    match = _DURATION.match(text)
    if not match:
        raise QueryError(f"{text!r} is not a duration (examples: 250ms, 3s, 30m, 6h, 1d)")
    number, unit = match.groups()
    return timedelta(seconds=float(number) * _UNIT_SECONDS[unit or default_unit])


def parse_latency_ms(text: str) -> float:
    """``3s`` → 3000.0, ``250ms`` → 250.0; a plain number is milliseconds, like the record's ``latency_ms``."""
    return parse_duration(text, default_unit="ms") / timedelta(milliseconds=1)


def parse_cost(text: str) -> float:
    """``0.10`` or ``$0.10`` → 0.1 (US dollars, like the record's ``cost_usd``)."""
    try:
        value = float(text.strip().lstrip("$"))
    except ValueError:
        raise QueryError(f"{text!r} is not a cost in US dollars (examples: 0.10, $0.002)") from None
    if value < 0:
        raise QueryError(f"cost {text!r} must not be negative")
    return value


def parse_time_ns(text: str, *, now: datetime | None = None) -> int:
    """An ISO-8601 time (naive means UTC) or a duration ago (``6h`` = six hours before ``now``), as epoch ns."""
    now = now or datetime.now(timezone.utc)
    if _DURATION.match(text):
        moment = now - parse_duration(text)
    else:
        try:
            moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise QueryError(
                f"{text!r} is neither a duration ago (6h, 1d, 30m) nor an ISO time (2026-11-27T14:00:00Z)"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
    return _datetime_to_ns(moment)


def _datetime_to_ns(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def path_getter(path: str) -> Callable[[Mapping[str, Any]], Any]:
    """A function reading ``path`` from a record, built once per scan (a plain name is one ``dict.get``)."""
    if path == "tokens":
        return record_tokens
    if "." not in path:
        return lambda record: record.get(path)
    parts = path.split(".")

    def get(record: Mapping[str, Any]) -> Any:
        value: Any = record
        for part in parts:
            if not isinstance(value, dict):
                return None
            value = value.get(part)
        return value

    return get


def record_tokens(record: Mapping[str, Any]) -> int | None:
    """Total tokens of a call, or input + output of a run record (runs carry no ``total_tokens``)."""
    total = record.get("total_tokens")
    if total is not None:
        return total
    parts = [record.get("input_tokens"), record.get("output_tokens")]
    if all(part is None for part in parts):
        return None
    return sum(part or 0 for part in parts)


#: Short names a user types for ``--sort``; anything else is a dotted record path.
SORT_ALIASES: dict[str, str] = {
    "latency": "latency_ms",
    "cost": "cost_usd",
    "tokens": "tokens",
    "time": "ts_ns",
    "ttft": "ttft_ms",
}


@dataclasses.dataclass(frozen=True)
class SortOrder:
    """``--sort -latency``: a record field and a direction. Records without the field always come last."""

    field: str = "ts_ns"
    descending: bool = True

    @classmethod
    def parse(cls, text: str) -> SortOrder:
        descending = text.startswith("-")
        name = text.lstrip("+-").strip()
        if not name:
            raise QueryError(f"--sort {text!r}: name a field, e.g. -latency or cost")
        return cls(field=SORT_ALIASES.get(name, name), descending=descending)

    @property
    def is_time(self) -> bool:
        return self.field == "ts_ns"

    def value(self, record: Mapping[str, Any]) -> Any:
        return self._getter(record)

    @functools.cached_property
    def _getter(self) -> Callable[[Mapping[str, Any]], Any]:
        return path_getter(self.field)

    def rank(self, record: Mapping[str, Any]) -> tuple[bool, Any]:
        """A key where larger is better in this order: missing values rank below every present one."""
        value = self.value(record)
        if value is None:
            return (False, 0)
        return (True, value if self.descending else Reversed(value))

    def first(self, items: Iterable[T], limit: int, record: Callable[[T], Mapping[str, Any]]) -> list[T]:
        """The ``limit`` best items in this order (ties keep arrival order), best first."""
        return heapq.nlargest(limit, items, key=lambda item: self.rank(record(item)))


class Reversed:
    """Inverts comparisons, so ascending orders reuse the same "keep the largest" selection."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: Reversed) -> bool:
        return other.value < self.value

    def __gt__(self, other: Reversed) -> bool:
        return other.value > self.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reversed) and other.value == self.value

    def __le__(self, other: Reversed) -> bool:
        return other.value <= self.value

    def __ge__(self, other: Reversed) -> bool:
        return other.value >= self.value


@dataclasses.dataclass(frozen=True, kw_only=True)
class Query:
    """Every filter ``llmmetrics traces`` understands; unset fields do not filter.

    Times are epoch nanoseconds (``start_ns`` inclusive, ``end_ns`` exclusive, as Loki's query_range);
    latencies are milliseconds and costs US dollars, the units of the record itself.
    """

    kind: str = "call"
    status: str | None = None
    model: str | None = None
    provider: str | None = None
    operation: str | None = None
    error_type: str | None = None
    user_id: str | None = None
    request_id: str | None = None
    trace_id: str | None = None
    call_id: str | None = None
    service: str | None = None
    env: str | None = None
    min_latency_ms: float | None = None
    max_latency_ms: float | None = None
    min_cost_usd: float | None = None
    max_cost_usd: float | None = None
    start_ns: int | None = None
    end_ns: int | None = None
    text: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise QueryError(f"kind {self.kind!r} must be one of {', '.join(KINDS)}")
        if self.status is not None and self.status not in STATUSES:
            raise QueryError(f"status {self.status!r} must be one of {', '.join(STATUSES)}")
        for low, high, what in (
            (self.min_latency_ms, self.max_latency_ms, "latency"),
            (self.min_cost_usd, self.max_cost_usd, "cost"),
            (self.start_ns, self.end_ns, "time range"),
        ):
            if low is not None and high is not None and low > high:
                raise QueryError(f"{what}: the lower bound is above the upper bound")

    # Equality filters on plain record fields: (query attribute, record path).
    EXACT_FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("status", "status"),
        ("model", "model"),
        ("provider", "provider"),
        ("operation", "operation"),
        ("error_type", "error.type"),
        ("user_id", "user_id"),
        ("request_id", "request_id"),
        ("trace_id", "trace_id"),
        ("call_id", "call_id"),
        ("service", "service"),
        ("env", "env"),
    )

    def matches(self, record: Mapping[str, Any]) -> bool:
        """True when the parsed record passes every filter except ``text`` (which applies to the raw line)."""
        return self.compile().predicate(record)

    def compile(self) -> CompiledQuery:
        """Decide once which checks matter, so the per-record cost is only the filters actually set."""
        checks: list[Callable[[Mapping[str, Any]], bool]] = []
        tokens: list[Token] = []
        if self.kind != "all":
            kind = self.kind
            checks.append(lambda r: r.get("kind", "call") == kind)
            if kind == "run":  # (a call record may omit "kind", so only "run" can be required in the line)
                tokens.append(Token.of("kind", "run"))
        for attribute, path in self.EXACT_FIELDS:
            wanted = getattr(self, attribute)
            if wanted is None:
                continue
            checks.append(_equals(path_getter(path), wanted))
            if _VERBATIM_JSON.match(wanted):
                tokens.append(Token.of(path, wanted))
        ranges: list[tuple[bytes, float, float]] = []
        for low, high, field in (
            (self.min_latency_ms, self.max_latency_ms, "latency_ms"),
            (self.min_cost_usd, self.max_cost_usd, "cost_usd"),
            (self.start_ns, self.end_ns, "ts_ns"),
        ):
            if low is not None or high is not None:
                checks.append(_range_check(field, low, high))
                top = math.inf if high is None else (high - 1 if field == "ts_ns" else high)
                ranges.append((field_key(field), -math.inf if low is None else low, top))
        text = self.text.encode() if self.text else None
        return CompiledQuery(checks=tuple(checks), tokens=tuple(tokens), text=text, ranges=tuple(ranges))


def _equals(get: Callable[[Mapping[str, Any]], Any], wanted: str) -> Callable[[Mapping[str, Any]], bool]:
    return lambda record: get(record) == wanted


def _range_check(field: str, low: float | None, high: float | None) -> Callable[[Mapping[str, Any]], bool]:
    """``low <= record[field]`` (inclusive) and ``record[field] <= high``; ts_ns's upper bound is exclusive."""
    exclusive_high = field == "ts_ns"

    def check(record: Mapping[str, Any]) -> bool:
        value = record.get(field)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return False
        if low is not None and value < low:
            return False
        return high is None or (value < high if exclusive_high else value <= high)

    return check


@dataclasses.dataclass(frozen=True)
class CompiledQuery:
    """A query ready for a scan: cheap byte tests on the raw line first, then checks on the parsed record."""

    checks: tuple[Callable[[Mapping[str, Any]], bool], ...]
    #: one per exact filter: a matching line holds ``"key":"value"`` when written compact (as the file sink
    #: does), and at least ``"value"`` whatever wrote it
    tokens: tuple[Token, ...]
    #: free text: a raw-line substring, the same semantics as LogQL's ``|= "text"``
    text: bytes | None
    #: numeric ranges as (``b'"field":'``, low, high): some occurrence of the key must hold a number inside
    ranges: tuple[tuple[bytes, float, float], ...] = ()

    @property
    def filters_lines(self) -> bool:
        """Whether :meth:`line_may_match` can ever say no."""
        return bool(self.text is not None or self.tokens or self.ranges)

    def line_may_match(self, line: bytes) -> bool:
        if self.text is not None and self.text not in line:
            return False
        if self.tokens:
            # The file sink writes orjson's compact JSON with "kind" first; such a line must hold the
            # compact ``"key":"value"``. A line from any other writer is held only to ``"value"``.
            compact = line.startswith(b'{"kind":"')
            for token in self.tokens:
                if (token.compact if compact else token.plain) not in line:
                    return False
        for key, low, high in self.ranges:
            if not any_number_within(line, key, low, high):
                return False
        return True

    @functools.cached_property
    def time_pattern(self) -> tuple[re.Pattern[bytes], float, float] | None:
        for key, low, high in self.ranges:
            if key == TIME_KEY:
                return number_pattern(key), low, high
        return None

    def block_may_match(self, data: Any, start: int, end: int) -> bool:
        """False when no line of the block ``data[start:end]`` (whole lines of a mapped file, searched in
        place) can match because a required exact value or the free text is absent. Tokens count in their
        compact or spaced form (see :class:`Token`)."""
        if self.text is not None and data.find(self.text, start, end) < 0:
            return False
        for token in self.tokens:
            if data.find(token.compact, start, end) < 0 and data.find(token.spaced, start, end) < 0:
                return False
        return True

    def block_in_time(self, data: Any, start: int, end: int) -> bool:
        """False when no timestamp in ``block`` lies in the time range (one regex pass over the block).

        Trace files are written in time order, so most blocks lie wholly outside a time range; a latency
        or cost range, by contrast, is met somewhere in nearly every block and is left to the lines.
        """
        if self.time_pattern is None:
            return True
        pattern, low, high = self.time_pattern
        timestamps = numbers_in(data, pattern, start, end)
        if not timestamps or max(timestamps) < low or min(timestamps) > high:
            return False
        return any(low <= value <= high for value in timestamps)

    def anchors(self, sample: bytes) -> tuple[bytes, ...]:
        """The byte patterns of the most selective required value, one of which every matching line holds.

        A scan looks for these in whole blocks and parses only the lines around them. Free text is the
        raw line itself; otherwise the exact value rarest in ``sample`` (the first block read), in both
        its compact and its spaced writing.
        """
        if self.text is not None and (len(self.text) >= 4 or not self.tokens):
            return (self.text,)
        if self.tokens:
            token = min(self.tokens, key=lambda t: (sample.count(t.compact) + sample.count(t.spaced), -len(t.plain)))
            return (token.compact, token.spaced)
        return ()

    def predicate(self, record: Mapping[str, Any]) -> bool:
        for check in self.checks:
            if not check(record):
                return False
        return True
