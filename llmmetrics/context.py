"""Who and what a call belongs to: bound user context and the agent run, carried in ``contextvars``.

``contextvars`` follow ``asyncio`` tasks (each task starts with a copy of its creator's context) and stay
separate per thread. To carry a run into a thread pool, submit ``contextvars.copy_context().run``.

Runs and calls join an outer W3C trace when there is one (:mod:`llmmetrics.tracecontext`): the
OpenTelemetry span recording when they start, else a ``traceparent`` bound with ``bind_context``.

>>> with bind_context(user_id="u-42"):
...     with trace_run("planner") as run:
...         pass  # every instrumented call in here shares run.trace_id
"""

from __future__ import annotations

import functools
import inspect
import os
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from types import MappingProxyType
from typing import Any, TypeVar

from .tracecontext import TRACEPARENT, current_span, parse_traceparent, span_parent

__all__ = ["bind_context", "trace_run", "Run", "current_context", "current_run", "new_ids"]

F = TypeVar("F", bound=Callable[..., Any])

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_bound: ContextVar[Mapping[str, Any]] = ContextVar("llmmetrics_context", default=_EMPTY)
_run: ContextVar[Run | None] = ContextVar("llmmetrics_run", default=None)


def new_ids() -> tuple[str, str]:
    """A fresh (trace_id, span_id): 32 and 16 lowercase hex characters, W3C trace-context sized."""
    raw = os.urandom(24).hex()
    return raw[:32], raw[32:]


def current_context() -> Mapping[str, Any]:
    return _bound.get()


def current_run() -> Run | None:
    return _run.get()


class _ContextDecorator:
    """Context manager that is also a decorator for sync and async functions, re-entered per call."""

    def _fresh(self) -> _ContextDecorator:
        raise NotImplementedError

    def __call__(self, fn: F) -> F:
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with self._fresh():
                    return await fn(*args, **kwargs)
            return run_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def run_sync(*args: Any, **kwargs: Any) -> Any:
            with self._fresh():
                return fn(*args, **kwargs)
        return run_sync  # type: ignore[return-value]

    async def __aenter__(self) -> Any:
        return self.__enter__()  # type: ignore[attr-defined]

    async def __aexit__(self, *exc: Any) -> None:
        self.__exit__(*exc)  # type: ignore[attr-defined]


class bind_context(_ContextDecorator):
    """Attach user context to every trace record made inside the block.

    ``user_id``, ``request_id`` and ``feature_flags`` become top-level record fields; other keys land in the
    record's ``context`` object. None of them ever becomes a Prometheus label.

    ``traceparent`` takes an incoming request's W3C trace context: calls and runs inside the block join that
    trace (unless an OpenTelemetry span is recording, which wins). A missing header (None) is ignored; a
    malformed one is ignored too and counted in ``llmmetrics_traceparent_rejected_total``, never raised.

    >>> with bind_context(user_id="u-42", feature_flags={"new_prompt": True}):
    ...     pass
    >>> with bind_context(traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"):
    ...     pass
    """

    def __init__(self, **values: Any) -> None:
        if TRACEPARENT in values:
            values = _checked_traceparent(values)
        self._values = values
        self._token: Token[Mapping[str, Any]] | None = None

    def _fresh(self) -> bind_context:
        return bind_context(**self._values)

    def __enter__(self) -> Mapping[str, Any]:
        merged = {**_bound.get(), **self._values}
        if "feature_flags" in self._values and "feature_flags" in _bound.get():
            merged["feature_flags"] = {**_bound.get()["feature_flags"], **self._values["feature_flags"]}
        self._token = _bound.set(MappingProxyType(merged))
        return merged

    def __exit__(self, *exc: Any) -> None:
        if self._token is not None:
            _bound.reset(self._token)
            self._token = None


def _checked_traceparent(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with ``traceparent`` kept only if it is a valid W3C header (stripped); a malformed one is
    counted and left out, a None one left out."""
    header = values.pop(TRACEPARENT)
    if parse_traceparent(header) is not None:
        values[TRACEPARENT] = header.strip()
    elif header is not None:
        try:
            from .runtime import runtime  # late: the runtime is replaced by configure()
            runtime().self_metrics.traceparent_rejected.inc()
        except Exception:  # counting is best effort: the user's code must go on
            pass
    return values


class Run:
    """One agent run: the parent of every call made inside ``trace_run``; collects its steps.

    Its parent is, innermost first: an OpenTelemetry span recording inside the enclosing run (or with no run
    around), the enclosing run, a bound ``traceparent``; without any, the run starts a trace of its own.
    """

    __slots__ = ("name", "trace_id", "span_id", "parent_span_id", "start_ns", "start_perf", "steps", "context",
                 "otel_span")

    def __init__(self, name: str, parent: Run | None, context: Mapping[str, Any]) -> None:
        trace_id, span_id = new_ids()
        self.name = name
        self.otel_span = span = current_span()
        outer = None
        if span is not None and (parent is None or span is not parent.otel_span):
            outer = span_parent(span)
        elif parent is not None:
            outer = parent.trace_id, parent.span_id
        elif TRACEPARENT in context:
            outer = parse_traceparent(context[TRACEPARENT])
        self.trace_id = outer[0] if outer is not None else trace_id
        self.span_id = span_id
        self.parent_span_id = outer[1] if outer is not None else None
        self.start_ns = time.time_ns()
        self.start_perf = time.perf_counter()
        self.steps: list[Any] = []  # the finished calls (instrumentation.Call), turned into steps off the call path
        self.context = context


class trace_run(_ContextDecorator):
    """Group every LLM call inside the block into one trace, and write one run record when it ends.

    Nested runs share the outer run's ``trace_id`` and point at it with ``parent_span_id``.

    >>> @trace_run("support-agent")
    ... def answer(question): ...
    """

    def __init__(self, name: str = "run") -> None:
        self.name = name
        self._token: Token[Run | None] | None = None
        self._run: Run | None = None

    def _fresh(self) -> trace_run:
        return trace_run(self.name)

    def __enter__(self) -> Run:
        self._run = Run(self.name, _run.get(), _bound.get())
        self._token = _run.set(self._run)
        return self._run

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        run, token = self._run, self._token
        self._run = self._token = None
        if token is not None:
            _run.reset(token)
        if run is not None:
            from .runtime import runtime  # late: the runtime is replaced by configure()
            runtime().finish_run(run, exc)
