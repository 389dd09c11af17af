"""Serving ``/metrics``: OpenMetrics (with exemplars) to Prometheus, and multi-process aggregation.

Prometheus asks for OpenMetrics when exemplar storage is on, and prometheus_client answers in the format the
``Accept`` header asks for. With several worker processes (gunicorn, uvicorn ``--workers``), set
``PROMETHEUS_MULTIPROC_DIR`` to an empty directory before the workers start: each process then writes its
values to files there and any one of them serves the sum. Multiprocess mode cannot carry exemplars, and
gauges are summed over live processes (``livesum``).
"""

from __future__ import annotations

import os
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client import start_http_server as _start_http_server

__all__ = ["start_http_server", "metrics_registry"]


def metrics_registry(registry: CollectorRegistry | None = None) -> CollectorRegistry:
    """The registry to expose: the given one, or in multiprocess mode a collector over every process's files."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir"):
        from prometheus_client import multiprocess

        aggregate = CollectorRegistry()
        multiprocess.MultiProcessCollector(aggregate)
        return aggregate
    return registry if registry is not None else REGISTRY


def start_http_server(port: int = 8000, addr: str = "0.0.0.0",
                      registry: CollectorRegistry | None = None) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``/metrics`` on ``addr:port`` from a daemon thread; returns the server and its thread.

    >>> server, thread = start_http_server(8000)  # doctest: +SKIP
    >>> server.shutdown()  # doctest: +SKIP
    """
    return _start_http_server(port, addr=addr, registry=metrics_registry(registry))
