"""Shared by the Loki tests: synthetic records, a harness that closes its sinks, the real Loki shared by the
session (each test in a tenant of its own), and the Loki stand-in."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.support.loki_contract_server import LokiContractServer
from tests.support.loki_server import LokiServer
from tests.support.tls_proxy import no_proxy_environment, proxy, tls_loki
from tests.support.workload import workload

from llmmetrics.config import Config
from llmmetrics.metrics import SelfMetrics
from llmmetrics.record import Record
from llmmetrics.sinks.loki import LokiSink

__all__ = ["Harness", "harness", "index", "loki", "no_proxy_environment", "proxy", "real_loki", "record", "tenant",
           "tls_loki", "workload"]

_tenants = itertools.count(1)


def record(i: int, *, ts_ns: int | None = None, level: str = "info", provider: str = "openai",
           user_id: str | None = "u-1", request_id: str | None = None, size: int = 200) -> Record:
    line = b'{"kind":"call","i":%d,"pad":"%s"}' % (i, b"x" * size)
    return Record(time.time_ns() if ts_ns is None else ts_ns, line, "call", level, provider, "gpt-4o",
                  f"{i:032x}", f"{i:016x}", f"{i + 1:032x}", user_id, request_id)


def index(line: str) -> int:
    return int(line.split('"i":')[1].split(",")[0])


class Harness:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.metrics = SelfMetrics(self.registry)
        self.sinks: list[LokiSink] = []

    def sink(self, url: str, **options: Any) -> LokiSink:
        options.setdefault("loki_batch_wait_seconds", 0.05)
        options.setdefault("loki_max_backoff_seconds", 0.2)
        sink = LokiSink(Config(loki_url=url, trace_file=None, **options), self.metrics)
        self.sinks.append(sink)
        return sink

    def value(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture()
def harness() -> Iterator[Harness]:
    h = Harness()
    yield h
    for sink in h.sinks:
        sink.close(2.0)


@pytest.fixture()
def loki() -> Iterator[LokiContractServer]:
    with LokiContractServer() as server:
        yield server


@pytest.fixture(scope="session")
def real_loki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LokiServer]:
    """One real Loki for the session (it answers a quarter of a second after it starts), shipped config, auth on."""
    with LokiServer(Path(tmp_path_factory.mktemp("loki"))) as server:
        yield server


@pytest.fixture()
def tenant(request: pytest.FixtureRequest) -> str:
    """A tenant of the shared Loki for this test alone: its streams, limits and discard counts are its own."""
    return f"t{next(_tenants)}-" + re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)[:100]
