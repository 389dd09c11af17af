"""The live wiring: configuration, metrics, price table, record pipeline and sinks, built once.

``configure()`` replaces the runtime as a whole; a call in flight keeps the runtime it started with. The
instrumentation reads ``runtime()`` once per call and touches nothing else global.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

from .config import Config
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
    """Everything a traced call needs, decided at construction."""

    def __init__(self, config: Config, registry: CollectorRegistry | None = REGISTRY,
                 sinks: list[Sink] | None = None) -> None:
        self.config = config
        self.registry = registry
        self.self_metrics = SelfMetrics(registry)
        self.metrics = LLMMetrics(registry, latency_slo_seconds=config.latency_slo_seconds,
                                  slow_call_seconds=config.slow_call_seconds, max_models=config.max_models,
                                  self_metrics=self.self_metrics)
        self.prices = PriceTable.load(config.price_file, config.prices)
        self.pipeline = Pipeline(config, self.self_metrics)
        self.sinks: tuple[Sink, ...] = tuple(sinks) if sinks is not None else tuple(build_sinks(config, self.self_metrics))
        self.exporter = RecordExporter(self.pipeline, self.sinks, self.self_metrics)
        self.submit = self.exporter.emit  # the one thing a finished call does with its record

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


def runtime() -> Runtime:
    """The current runtime, built from the environment on first use."""
    rt = _runtime
    if rt is None:
        with _lock:
            if _runtime is None:
                _install(Runtime(Config.from_env()))
            rt = _runtime
    return rt  # type: ignore[return-value]


def configure(config: Config | None = None, *, registry: CollectorRegistry | None = REGISTRY,
              sinks: list[Sink] | None = None, **options: Any) -> Runtime:
    """Build a new runtime from ``config`` or from ``LLMMETRICS_*`` plus ``options``; close the old one.

    >>> configure(service="checkout", sample_success_ratio=0.1)  # doctest: +SKIP
    """
    if config is None:
        config = Config.from_env(**options)
    elif options:
        config = config.replace(**options)
    with _lock:
        old = _runtime
        if old is not None and old.registry is registry and registry is not None:
            _unregister(old, registry)
        new = Runtime(config, registry, sinks)
        _install(new)
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


def _unregister(rt: Runtime, registry: CollectorRegistry) -> None:
    """Metric families of the previous runtime leave the registry so the new ones can take their names."""
    for collector in list(registry._collector_to_names):  # noqa: SLF001 - prometheus_client has no public lookup
        names = registry._collector_to_names.get(collector, ())
        if any(n.startswith(("llm_", "llmmetrics_")) for n in names):
            registry.unregister(collector)


atexit.register(shutdown)
