"""Fixtures shared by every test package: the fake LLM server, a fresh runtime per test, instrumented clients
(openai and anthropic), and the Loki sink harness. Helpers behind them live in ``tests/support/``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import llmmetrics
from llmmetrics.fake import FakeLLMServer, FaultPlan, LatencyModel
from tests.support.fake import claude_client
from tests.support.llm import Traced, make_client
from tests.support.loki import (harness, loki, no_proxy_environment, proxy, real_loki, tenant,  # noqa: F401
                                tls_loki, workload)  # fixtures of the Loki tests

# ends the run with the real servers each test used and their versions
pytest_plugins = ("tests.support.server_report",)


@pytest.fixture(scope="session")
def llm_server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(seed=11, latency=LatencyModel.none(), faults=FaultPlan(timeout_seconds=30.0)) as server:
        yield server


@pytest.fixture
def traced(tmp_path: Path) -> Iterator[Traced]:
    registry = CollectorRegistry()
    path = tmp_path / "traces.jsonl"
    runtime = llmmetrics.configure(registry=registry, trace_file=str(path), service="test-svc", env="test")
    yield Traced(registry, path, runtime)
    runtime.close(5)


@pytest.fixture
def client(llm_server: FakeLLMServer) -> Any:
    return llmmetrics.instrument(make_client(llm_server))


@pytest.fixture
def async_client(llm_server: FakeLLMServer) -> Any:
    return llmmetrics.instrument(make_client(llm_server, is_async=True))


@pytest.fixture
def claude(llm_server: FakeLLMServer) -> Any:
    return llmmetrics.instrument(claude_client(llm_server))


@pytest.fixture
def async_claude(llm_server: FakeLLMServer) -> Any:
    return llmmetrics.instrument(claude_client(llm_server, is_async=True))
