"""The live wiring: configuration, metrics, price table, record pipeline and sinks, built once.

``configure()`` replaces the runtime as a whole, and only once the new one is completely built: the new
metrics are made outside any registry and swapped in for the old ones in one step, so a configuration that
fails changes nothing — the previous runtime keeps counting and shipping. A call in flight keeps the runtime
it started with. The instrumentation reads ``runtime()`` once per call and touches nothing else global.

Without ``configure()``, the first instrumented call builds the runtime from the environment. That path never
raises into the call: a bad ``LLMMETRICS_*`` value is logged at ERROR (and written to stderr when nothing
would show the log), counted in ``llmmetrics_config_errors_total``, and replaced by its default.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
import weakref
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from .config import Config, ConfigError, default_of, from_env_or_defaults, resource_problems, unknown_variables
from .context import Run
from .metrics import LLMMetrics, SelfMetrics
from .pricing import PriceTable
from .processors import Pipeline
from .export import RecordExporter
from .record import timestamp
from .sinks import Sink, build_sinks

__all__ = ["Runtime", "runtime", "configure", "shutdown"]

log = logging.getLogger("llmmetrics")
_EXIT_FLUSH_SECONDS = 5.0


class Runtime:
    """Everything a traced call needs, decided at construction.

    Its metrics are created outside any registry; they join ``registry`` when the runtime is installed
    (``configure()`` or the first call), replacing those of the runtime before it.
    """

    def __init__(self, config: Config, registry: CollectorRegistry | None = REGISTRY,
                 sinks: list[Sink] | None = None) -> None:
        self.config = config
        self.registry = registry
        self.prices = PriceTable.load(config.price_file, config.prices)
        self.self_metrics = SelfMetrics(None)
        self.metrics = LLMMetrics(None, latency_slo_seconds=config.latency_slo_seconds,
                                  slow_call_seconds=config.slow_call_seconds, max_models=config.max_models,
                                  self_metrics=self.self_metrics)
        self.pipeline = Pipeline(config, self.self_metrics)
        self.sinks: tuple[Sink, ...] = tuple(sinks) if sinks is not None else tuple(build_sinks(config, self.self_metrics))
        self.exporter = RecordExporter(self.pipeline, self.sinks, self.self_metrics)
        self.submit = self.exporter.emit  # the one thing a finished call does with its record

    @property
    def collectors(self) -> list[MetricWrapperBase]:
        """Every metric family of this runtime, as registered in its registry."""
        return [metric for part in (self.self_metrics, self.metrics) for metric in vars(part).values()
                if isinstance(metric, MetricWrapperBase)]

    def finish_run(self, run: Run, exc: BaseException | None) -> None:
        """Queue the run record: its steps, totals, wall time, time waiting on models, and what failed."""
        self.submit(RunEnd(run, exc, self.config, time.perf_counter()))

    def flush(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        ok = self.exporter.flush(timeout)
        for sink in self.sinks:
            ok = sink.flush(max(deadline - time.monotonic(), 0.0)) and ok
        return ok

    def close(self, timeout: float = _EXIT_FLUSH_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        self.exporter.close(timeout)
        for sink in self.sinks:
            try:
                sink.close(max(deadline - time.monotonic(), 0.1))
            except Exception:
                log.warning("llmmetrics: closing sink %s failed", getattr(sink, "name", sink), exc_info=True)


class RunEnd:
    """A finished ``trace_run``, waiting for the exporter to turn it into a run record."""

    __slots__ = ("run", "exc", "config", "end_perf")
    model_label = ""

    def __init__(self, run: Run, exc: BaseException | None, config: Config, end_perf: float) -> None:
        self.run = run
        self.exc = exc
        self.config = config
        self.end_perf = end_perf

    def complete(self) -> None:
        """Nothing to count: a run's calls count their own tokens and cost."""

    def record(self) -> dict[str, Any]:
        return run_record(self.run, self.exc, self.config, self.end_perf)


def run_record(run: Run, exc: BaseException | None, config: Config, end_perf: float) -> dict[str, Any]:
    steps = [call.step() for call in run.steps]
    failed = [s for s in steps if s["status"] == "error"]
    error = None
    if exc is not None:
        error = {"type": type(exc).__name__, "message": str(exc)[:2000]}
    elif failed:
        error = {"type": failed[-1]["error_type"], "message": failed[-1].get("error_message")}

    def total(field: str) -> int:
        return sum(s.get(field) or 0 for s in steps)

    priced = [s["cost_usd"] for s in steps if s.get("cost_usd") is not None]
    ctx = run.context
    return {
        "kind": "run",
        "run_name": run.name,
        "trace_id": run.trace_id,
        "span_id": run.span_id,
        "parent_span_id": run.parent_span_id,
        "timestamp": timestamp(run.start_ns),
        "ts_ns": run.start_ns,
        "service": config.service,
        "env": config.env,
        "status": "error" if exc is not None else "success",
        "latency_ms": (end_perf - run.start_perf) * 1000.0,
        "model_wait_ms": sum(s["latency_ms"] for s in steps),
        "steps": [{k: v for k, v in s.items() if k != "error_message"} for s in steps],
        "step_count": len(steps),
        "failed_steps": len(failed),
        "input_tokens": total("input_tokens"),
        "output_tokens": total("output_tokens"),
        "cached_input_tokens": total("cached_input_tokens"),
        "reasoning_tokens": total("reasoning_tokens"),
        "cache_write_tokens": total("cache_write_tokens"),
        "cost_usd": sum(priced) if priced else (None if steps else 0.0),
        "unpriced_steps": sum(1 for s in steps if s.get("cost_usd") is None and s["status"] == "success"),
        "error": error,
        "failed_call_id": failed[-1]["call_id"] if failed else None,
        "_context": ctx,
    }


_lock = threading.Lock()
_runtime: Runtime | None = None
#: The metric families llmmetrics put into each registry, so that a new runtime replaces exactly those.
_registered: weakref.WeakKeyDictionary[CollectorRegistry, list[MetricWrapperBase]] = weakref.WeakKeyDictionary()
#: Unknown LLMMETRICS_* variables already reported: each is reported once per process.
_reported_unknown: set[str] = set()


def runtime() -> Runtime:
    """The current runtime, built from the environment on first use (see the module docstring).

    Configuration mistakes, sinks that cannot start and metric names taken in the registry are reported and
    worked around, never raised. Only a defect in llmmetrics itself — the runtime cannot be built even with
    the defaults, no sinks and no registry — raises here, for the call path's guards to log, count and
    swallow (``instrumentation``, ``trace_run``).
    """
    rt = _runtime
    if rt is None:
        with _lock:
            if _runtime is None:
                _install(_from_environment())
            rt = _runtime
    return rt  # type: ignore[return-value]


def configure(config: Config | None = None, *, registry: CollectorRegistry | None = REGISTRY,
              sinks: list[Sink] | None = None, **options: Any) -> Runtime:
    """Build a new runtime from ``config`` or from ``LLMMETRICS_*`` plus ``options``; close the old one.

    Everything is validated first, then built, then swapped in: a :class:`~llmmetrics.ConfigError` (which
    names each bad field, its variable, the value and what is accepted) leaves the previous runtime, its
    metrics and its sinks exactly as they were.

    >>> configure(service="checkout", sample_success_ratio=0.1)  # doctest: +SKIP
    """
    if config is None:
        config = Config.from_env(**options)
    elif options:
        config = config.replace(**options)
    config.check()
    if config.loki_url and sinks is None:
        from .sinks.loki_push import stream_labels

        stream_labels(config)  # label names and values, checked before anything starts
    with _lock:
        old = _runtime
        try:
            new = Runtime(config, registry, sinks)
        except ConfigError:
            raise
        except (OSError, ValueError) as error:
            raise ConfigError(f"invalid configuration: could not start the trace sinks: {error}") from error
        try:
            _register(new)
        except ValueError as error:
            new.close(1.0)
            raise ConfigError(f"invalid configuration: {error}") from None
        _install(new)
    _report_unknown(new)
    if old is not None:
        old.close()
    return new


def shutdown(timeout: float = _EXIT_FLUSH_SECONDS) -> None:
    """Flush and stop every sink (bounded wait). Registered with ``atexit``."""
    rt = _runtime
    if rt is not None:
        rt.close(timeout)


def _install(rt: Runtime) -> None:
    global _runtime
    _runtime = rt


def _register(new: Runtime) -> None:
    """Put ``new``'s metrics into its registry in place of those llmmetrics registered there before.

    All or nothing: if a name is taken by someone else's collector, the previous ones are put back and
    ``ValueError`` says which name.
    """
    registry = new.registry
    if registry is None:
        return
    leaving = _registered.pop(registry, [])
    for collector in leaving:
        registry.unregister(collector)
    joined: list[MetricWrapperBase] = []
    try:
        for collector in new.collectors:
            registry.register(collector)
            joined.append(collector)
    except ValueError as error:
        for collector in joined:
            registry.unregister(collector)
        for collector in leaving:
            registry.register(collector)
        if leaving:
            _registered[registry] = leaving
        raise ValueError(f"the metrics registry already holds a collector named like one of llmmetrics' "
                         f"metrics ({error}); pass configure(registry=...) another registry") from None
    _registered[registry] = joined


def _from_environment() -> Runtime:
    """The runtime of the first call without ``configure()``: the environment's values where they are valid,
    the defaults where not, and then fewer sinks or no registry if even that cannot start. Every problem is
    reported and counted; none is raised."""
    try:
        config, problems = from_env_or_defaults(os.environ)
        bad = resource_problems(config)
        if bad:
            config = config.replace(**{p.field: default_of(p.field) for p in bad})
        messages = [f"{p}; using the default ({default_of(p.field)!r}) instead" for p in problems + bad]
        if bad:
            for p in resource_problems(config):  # a default can fail too, e.g. an unwritable working directory
                config = config.replace(**{p.field: None})
                messages.append(f"{p}; running without it")
    except Exception as error:  # a bug in llmmetrics: still never the user's call
        config, messages = Config(trace_file=None), [f"reading the LLMMETRICS_* environment failed ({error!r}); "
                                                     "running with the defaults and no trace file"]
    no_sinks = config.replace(loki_url=None, trace_file=None, log_records=False)
    attempts = [(config, REGISTRY)]
    if config.loki_url:
        attempts.append((config.replace(loki_url=None), REGISTRY))
    if no_sinks != attempts[-1][0]:
        attempts.append((no_sinks, REGISTRY))
    rt = None
    for attempt, registry in attempts:
        try:
            rt = Runtime(attempt, registry)
        except Exception as error:
            messages.append(f"could not start {_sinks_of(attempt)}: {error}")
            continue
        try:
            _register(rt)
            break
        except ValueError as error:
            messages.append(f"{error}; the metrics are counted but not exposed")
            break
    else:  # not even without sinks: only a bug in llmmetrics gets here, and the call path's guard counts it
        rt = Runtime(no_sinks, None)
    if rt.config is not config:
        messages.append(f"running {_sinks_of(rt.config)} instead")
    for message in messages:
        _report(logging.ERROR, f"invalid configuration: {message}")
    if messages:
        rt.self_metrics.config_errors.labels("invalid_value").inc(len(messages))
    _report_unknown(rt)
    return rt


def _sinks_of(config: Config) -> str:
    names = [name for name, on in (("the trace file", config.trace_file), ("the Loki sink", config.loki_url),
                                   ("the logging sink", config.log_records)) if on]
    return "with " + " and ".join(names) if names else "without sinks"


def _report_unknown(rt: Runtime) -> None:
    """Warn once per process about each unknown LLMMETRICS_* variable (a typo), counted in ``rt``."""
    for variable, message in unknown_variables(os.environ).items():
        if variable not in _reported_unknown:
            _reported_unknown.add(variable)
            _report(logging.WARNING, message)
            rt.self_metrics.config_errors.labels("unknown_variable").inc()


def _report(level: int, message: str) -> None:
    """Log ``message`` on the ``llmmetrics`` logger, and write it to stderr when logging would show it nowhere.

    An application that set up no logging has Python's last-resort handler print it; but a library that
    added a ``NullHandler`` to a logger on the way to the root would silence it: then stderr gets it
    directly. An application that lowered the ``llmmetrics`` logger's level below ``level`` is obeyed.
    """
    text = f"llmmetrics: {message}"
    log.log(level, text)
    if log.isEnabledFor(level) and not _logging_shows(level):
        try:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
        except (OSError, ValueError, AttributeError):  # no stderr (pythonw, closed): the log is all there is
            pass


def _logging_shows(level: int) -> bool:
    """Whether a record at ``level`` on the ``llmmetrics`` logger reaches a handler that prints it."""
    found = False
    logger: logging.Logger | None = log
    while logger is not None:
        for handler in logger.handlers:
            found = True
            if not isinstance(handler, logging.NullHandler) and level >= handler.level:
                return True
        if not logger.propagate:
            break
        logger = logger.parent
    last_resort = logging.lastResort
    return not found and last_resort is not None and level >= last_resort.level


atexit.register(shutdown)
