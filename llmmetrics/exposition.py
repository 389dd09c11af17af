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


def start_http_server(port: int = 8000, addr: str = "0.0.0.0", registry: CollectorRegistry | None = None, *,
                      certfile: str | None = None, keyfile: str | None = None, client_cafile: str | None = None,
                      client_capath: str | None = None,
                      client_auth_required: bool = False) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``/metrics`` on ``addr:port`` from a daemon thread; returns the server and its thread.

    ``addr`` defaults to every IPv4 interface, as prometheus_client and Prometheus exporters do, so a
    Prometheus on another host (or outside the container) can scrape it; pass ``addr="127.0.0.1"`` when
    Prometheus (or its agent) runs on the same host, and TLS when the scrape crosses a network.

    TLS is prometheus_client's: ``certfile`` and ``keyfile`` (PEM) serve HTTPS; ``client_auth_required`` with
    ``client_cafile`` or ``client_capath`` accepts only clients with a certificate that CA signed (Prometheus'
    ``tls_config.cert_file``/``key_file``). Combinations that would silently weaken what was asked for raise
    ``ValueError``: a certificate without its key (served plain HTTP), client options without TLS, a client CA
    without ``client_auth_required`` (not checked), ``client_auth_required`` without a client CA (any
    certificate from the system's public CAs accepted).

    >>> server, thread = start_http_server(8000)  # doctest: +SKIP
    >>> server, thread = start_http_server(9443, certfile="server.pem", keyfile="server.key",
    ...     client_cafile="scrapers-ca.pem", client_auth_required=True)  # doctest: +SKIP
    >>> server.shutdown()  # doctest: +SKIP
    """
    _check_tls(certfile, keyfile, client_cafile, client_capath, client_auth_required)
    return prometheus_client.start_http_server(port, addr=addr, registry=metrics_registry(registry), certfile=certfile,
                                             keyfile=keyfile, client_cafile=client_cafile,
                                             client_capath=client_capath, client_auth_required=client_auth_required)


def _check_tls(certfile: str | None, keyfile: str | None, client_cafile: str | None, client_capath: str | None,
               client_auth_required: bool) -> None:
    client_ca = client_cafile is not None or client_capath is not None
    if (certfile is None) != (keyfile is None):
        raise ValueError("certfile and keyfile go together: with only one, /metrics would be served "
                         "as plain HTTP")
    if certfile is None and (client_ca or client_auth_required):
        raise ValueError("client_cafile, client_capath and client_auth_required need TLS: pass certfile and keyfile")
    if client_ca and not client_auth_required:
        raise ValueError("a client CA is only used with client_auth_required=True: without it any client "
                         "may scrape")
    if client_auth_required and not client_ca:
        raise ValueError("client_auth_required needs client_cafile or client_capath: without them any "
                         "certificate issued by the system's public CAs would be accepted")
