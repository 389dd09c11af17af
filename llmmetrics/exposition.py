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
    return _start_http_server(port, addr=addr, registry=metrics_registry(registry), certfile=certfile,
                              keyfile=keyfile, client_cafile=client_cafile, client_capath=client_capath,
                              client_auth_required=client_auth_required)


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
