"""Serving ``/metrics``: OpenMetrics (with exemplars) to Prometheus, from one process or from many.

Prometheus asks for OpenMetrics when exemplar storage is on (``Accept: application/openmetrics-text``), and
these endpoints answer in the format asked for, as prometheus_client does: the classic text format, which has
no exemplars, to everyone else.

With several worker processes (gunicorn, uvicorn ``--workers``), set ``PROMETHEUS_MULTIPROC_DIR`` to an empty
directory before the workers start. Each process then writes its values there (prometheus_client) and its
newest exemplars (``llmmetrics.exemplars``), and any one of them serves the whole: counters and histograms
summed over every process that ever ran, gauges over live ones (``livesum``), and on each bucket the newest
exemplar any worker recorded, none older than ``exemplar_horizon_seconds``. docs/multiprocess.md is the
deployment guide.

>>> app = make_asgi_app()  # mount at /metrics in your ASGI app; make_wsgi_app() for WSGI   # doctest: +SKIP
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIServer

import prometheus_client
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from .config import Config
from .exemplars import read_exemplars

__all__ = ["start_http_server", "make_asgi_app", "make_wsgi_app", "metrics_registry", "ExemplarMultiProcessCollector"]


class ExemplarMultiProcessCollector:
    """prometheus_client's ``MultiProcessCollector`` (every process's values, merged as it merges them), with
    each bucket and counter given the newest exemplar any worker shared for it.

    ``exemplar_horizon_seconds=None`` follows the configuration (``configure()`` or
    ``LLMMETRICS_EXEMPLAR_HORIZON_SECONDS``), read at each scrape.
    """

    def __init__(self, path: str, registry: CollectorRegistry | None = None, *,
                 exemplar_horizon_seconds: float | None = None) -> None:
        self._path = path
        self._values = MultiProcessCollector(None, path)
        self._horizon = exemplar_horizon_seconds
        self._env_horizon: float | None = None
        if registry is not None:
            registry.register(self)

    def collect(self) -> Iterable[Metric]:
        exemplars = read_exemplars(self._path, not_before=time.time() - self.horizon())
        carriers = {name for name, _ in exemplars}
        for metric in self._values.collect():
            if exemplars and (metric.name + "_bucket" in carriers or metric.name + "_total" in carriers):
                samples = metric.samples
                for i, sample in enumerate(samples):
                    if sample.name in carriers:  # buckets and totals; _sum, _count never carry one
                        exemplar = exemplars.get((sample.name, tuple(sorted(sample.labels.items()))))
                        if exemplar is not None:
                            samples[i] = sample._replace(exemplar=exemplar)
            yield metric

    def horizon(self) -> float:
        if self._horizon is not None:
            return self._horizon
        from .runtime import _runtime as rt  # the configured runtime, if any: building one here would open sinks

        if rt is not None:
            return rt.config.exemplar_horizon_seconds
        if self._env_horizon is None:  # a process that serves /metrics without making calls (gunicorn's master)
            self._env_horizon = Config.from_env().exemplar_horizon_seconds
        return self._env_horizon


def multiprocess_dir() -> str | None:
    """``PROMETHEUS_MULTIPROC_DIR`` (or its old lower-case name) when multiprocess mode is on."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir") or None


def metrics_registry(registry: CollectorRegistry | None = None) -> CollectorRegistry:
    """What to expose: the given registry (default: prometheus_client's), or in multiprocess mode every
    process's values and shared exemplars."""
    path = multiprocess_dir()
    if path:
        aggregate = CollectorRegistry()
        ExemplarMultiProcessCollector(path, aggregate)
        return aggregate
    return registry if registry is not None else REGISTRY


def make_asgi_app(registry: CollectorRegistry | None = None, *, disable_compression: bool = False) -> Callable[..., Any]:
    """An ASGI app serving ``metrics_registry(registry)``: OpenMetrics with exemplars when the scraper asks
    for it (Prometheus with exemplar storage does), the classic text format otherwise; gzip when accepted.

    >>> from starlette.routing import Mount                      # doctest: +SKIP
    >>> routes = [Mount("/metrics", app=llmmetrics.make_asgi_app())]   # doctest: +SKIP
    """
    return prometheus_client.make_asgi_app(metrics_registry(registry), disable_compression=disable_compression)


def make_wsgi_app(registry: CollectorRegistry | None = None, *, disable_compression: bool = False) -> Callable[..., Any]:
    """The WSGI twin of :func:`make_asgi_app` (Flask, Django, any WSGI server).

    >>> from werkzeug.middleware.dispatcher import DispatcherMiddleware          # doctest: +SKIP
    >>> app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/metrics": llmmetrics.make_wsgi_app()})  # doctest: +SKIP
    """
    return prometheus_client.make_wsgi_app(metrics_registry(registry), disable_compression=disable_compression)


def start_http_server(port: int = 8000, addr: str = "0.0.0.0",
                      registry: CollectorRegistry | None = None) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``/metrics`` on ``addr:port`` from a daemon thread; returns the server and its thread.

    >>> server, thread = start_http_server(8000)  # doctest: +SKIP
    >>> server.shutdown()  # doctest: +SKIP
    """
    return prometheus_client.start_http_server(port, addr=addr, registry=metrics_registry(registry))
