"""Who and what a call belongs to: bound user context and the agent run, carried in ``contextvars``.

Where the context goes with the user's work:

- **asyncio**: every task starts with a copy of its creator's context, so ``asyncio.gather``, ``TaskGroup``,
  ``create_task`` and ``asyncio.to_thread`` carry the run and the bound context.
- **Threads and pools** start with a context of their own: a call made there belongs to no run and carries
  no bound context. Wrap what you submit in :func:`propagate` (or submit ``contextvars.copy_context().run``):
  ``pool.submit(llmmetrics.propagate(work), item)``, ``loop.run_in_executor(None, llmmetrics.propagate(work))``.
- **Generators**: decorate the generator function (``@trace_run("agent")`` on a ``def`` that yields): the run
  spans the whole iteration and is current only while the generator runs, whichever thread or context
  resumes it, so the consumer's own calls between steps stay out of it. A ``with trace_run(...)`` block
  held across a ``yield`` follows only a generator resumed in the same context.
- **A call joins a run only while the run is open.** A call that ends after its run ended (a future nobody
  waited for; a context captured once and reused later; a pool thread that inherited a context when it was
  started, as threads do on free-threaded Python 3.14) is recorded as a trace of its own, keeping its bound
  context, and counted in ``llmmetrics_detached_calls_total``: it is never attached to a run whose record
  has already been written. A ``trace_run`` begun there starts a trace of its own.

Runs and calls join an outer W3C trace when there is one (:mod:`llmmetrics.tracecontext`): the
OpenTelemetry span recording when they start, else a ``traceparent`` bound with ``bind_context``.

>>> with bind_context(user_id="u-42"):
...     with trace_run("planner") as run:
...         pass  # every instrumented call in here shares run.trace_id
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar, Token
from types import MappingProxyType
from typing import Any, ParamSpec, TypeVar

from .tracecontext import TRACEPARENT, current_span, parse_traceparent, span_parent

__all__ = ["bind_context", "trace_run", "propagate", "Run", "current_context", "current_run", "new_ids"]

log = logging.getLogger("llmmetrics")

F = TypeVar("F", bound=Callable[..., Any])
P = ParamSpec("P")
R = TypeVar("R")

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


def propagate(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn``, made to run in the context of the code that calls ``propagate``: its ``trace_run`` and
    ``bind_context`` follow it into a thread pool.

    Call it where you submit the work, not where you define it. Each invocation runs in its own copy of
    that context, so one wrapped function can be mapped over a pool concurrently.

    >>> from concurrent.futures import ThreadPoolExecutor
    >>> def whose(order: int) -> str:
    ...     return f"order {order}: {current_context().get('user_id')}"
    >>> with bind_context(user_id="u-42"), ThreadPoolExecutor(2) as pool:
    ...     list(pool.map(propagate(whose), [1, 2]))
    ['order 1: u-42', 'order 2: u-42']
    """
    context = contextvars.copy_context()

    @functools.wraps(fn)
    def in_context(*args: P.args, **kwargs: P.kwargs) -> R:
        return context.copy().run(fn, *args, **kwargs)
    return in_context


def _restore(var: ContextVar[Any], token: Token[Any], value: Any, default: Any) -> None:
    """Undo ``var.set(value)``. A block left in another context than it was entered in (a ``with`` held
    across a generator's ``yield``, resumed elsewhere) must not raise into the user's code: there the
    variable is put back only if it still holds this block's value."""
    try:
        var.reset(token)
    except ValueError:
        if var.get() is value:
            var.set(default if token.old_value is Token.MISSING else token.old_value)


class _ContextDecorator:
    """Context manager that is also a decorator for sync and async functions and generators, re-entered
    per call. Subclasses say which variable they set (``_var``), to what (``_begin``), and what ending
    means (``_end``)."""

    _var: ContextVar[Any]
    _default: Any

    def _fresh(self) -> _ContextDecorator:
        raise NotImplementedError

    def _begin(self) -> Any:
        raise NotImplementedError

    def _end(self, value: Any, exc: BaseException | None) -> None:
        """Nothing to do by default."""

    def __enter__(self) -> Any:
        value = self._begin()
        self._entered = (value, self._var.set(value))
        return value

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        entered, self._entered = getattr(self, "_entered", None), None
        if entered is not None:
            value, token = entered
            _restore(self._var, token, value, self._default)
            self._end(value, exc)

    async def __aenter__(self) -> Any:
        return self.__enter__()

    async def __aexit__(self, *exc: Any) -> None:
        self.__exit__(*exc)

    def __call__(self, fn: F) -> F:
        if inspect.isasyncgenfunction(fn):
            return self._wrap_async_generator(fn)  # type: ignore[return-value]
        if inspect.isgeneratorfunction(fn):
            return self._wrap_generator(fn)  # type: ignore[return-value]
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

    def _wrap_generator(self, fn: Callable[..., Iterator[Any]]) -> Callable[..., Any]:
        """The scope begins with the first step and ends with the generator; its variable is set only while
        the generator runs (each step, in whatever context resumes it) and never while its consumer does."""
        var = self._var

        def step(value: Any, action: Callable[..., Any], *arg: Any) -> Any:
            token = var.set(value)
            try:
                return action(*arg)
            finally:
                var.reset(token)

        @functools.wraps(fn)
        def run_generator(*args: Any, **kwargs: Any) -> Any:
            scope = self._fresh()
            gen = fn(*args, **kwargs)
            value = scope._begin()
            exc: BaseException | None = None
            try:
                action, arg = gen.send, None
                while True:
                    try:
                        item = step(value, action, arg)
                    except StopIteration as stop:
                        return stop.value
                    try:
                        arg = yield item
                        action = gen.send
                    except GeneratorExit:
                        step(value, gen.close)
                        raise
                    except BaseException as thrown:  # thrown in by the consumer: the generator decides
                        action, arg = gen.throw, thrown
            except GeneratorExit:
                raise  # the consumer stopped early (break, close): not a failure of the run
            except BaseException as raised:
                exc = raised
                raise
            finally:
                scope._end(value, exc)
        return run_generator

    def _wrap_async_generator(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        var = self._var

        @functools.wraps(fn)
        async def run_async_generator(*args: Any, **kwargs: Any) -> Any:
            scope = self._fresh()
            agen = fn(*args, **kwargs)
            value = scope._begin()
            exc: BaseException | None = None
            try:
                action, arg = agen.asend, None
                while True:
                    token = var.set(value)
                    try:
                        item = await action(arg)
                    except StopAsyncIteration:
                        return
                    finally:
                        var.reset(token)
                    try:
                        arg = yield item
                        action = agen.asend
                    except GeneratorExit:
                        token = var.set(value)
                        try:
                            await agen.aclose()
                        finally:
                            var.reset(token)
                        raise
                    except BaseException as thrown:
                        action, arg = agen.athrow, thrown
            except GeneratorExit:
                raise
            except BaseException as raised:
                exc = raised
                raise
            finally:
                scope._end(value, exc)
        return run_async_generator


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

    _var = _bound
    _default = _EMPTY

    def __init__(self, **values: Any) -> None:
        if TRACEPARENT in values:
            values = _checked_traceparent(values)
        self._values = values

    def _fresh(self) -> bind_context:
        return bind_context(**self._values)

    def _begin(self) -> Mapping[str, Any]:
        outer = _bound.get()
        merged = {**outer, **self._values}
        if "feature_flags" in self._values and "feature_flags" in outer:
            merged["feature_flags"] = {**outer["feature_flags"], **self._values["feature_flags"]}
        return MappingProxyType(merged)


class _EndedSteps:
    """The steps of a run that has ended: the calls that joined it, and no more.

    A call that ends after its run (it reaches ``append``) is detached: recorded as its own trace, counted.
    """

    __slots__ = ("_steps",)

    def __init__(self, steps: list[Any]) -> None:
        self._steps = steps

    def __iter__(self) -> Iterator[Any]:
        return iter(self._steps)

    def __len__(self) -> int:
        return len(self._steps)

    def append(self, call: Any) -> None:
        call.run = None  # its ids, parent and run name are made later, by the exporter, from this
        try:
            call.rt.self_metrics.detached_calls.inc()  # the runtime the call started with
        except Exception:  # on the call path: never raise
            log.debug("llmmetrics: could not count a detached call", exc_info=True)


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
        # the finished calls (instrumentation.Call), turned into steps off the call path
        self.steps: list[Any] | _EndedSteps = []
        self.context = context

    def end(self) -> None:
        """No call joins the run from now on (see ``_EndedSteps``)."""
        if type(self.steps) is list:
            self.steps = _EndedSteps(self.steps)

    @property
    def ended(self) -> bool:
        return type(self.steps) is not list


class trace_run(_ContextDecorator):
    """Group every LLM call inside the block into one trace, and write one run record when it ends.

    Nested runs share the outer run's ``trace_id`` and point at it with ``parent_span_id``. As a decorator
    it wraps functions, coroutines and (async) generators; for a generator the run lasts the whole iteration.

    >>> @trace_run("support-agent")
    ... def answer(question): ...
    """

    _var = _run
    _default = None

    def __init__(self, name: str = "run") -> None:
        self.name = name

    def _fresh(self) -> trace_run:
        return trace_run(self.name)

    def _begin(self) -> Run:
        parent = _run.get()
        # a run begun in a stale context (its run has ended) starts a trace of its own, like a detached call
        return Run(self.name, parent if parent is not None and not parent.ended else None, _bound.get())

    def _end(self, run: Run, exc: BaseException | None) -> None:
        run.end()
        from .runtime import runtime  # late: the runtime is replaced by configure()

        try:
            # a generator's consumer that stops early (break, close) is not a failure of the run
            runtime().finish_run(run, None if isinstance(exc, GeneratorExit) else exc)
        except Exception:  # llmmetrics' own failure never leaves the user's `with` block
            log.debug("llmmetrics: could not record the run %r", run.name, exc_info=True)
