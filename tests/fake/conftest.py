"""One seeded, latency-free fake server per test module, with its faults cleared before each test, and the real
``openai`` and ``anthropic`` clients on it."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest

from llmmetrics.fake import FakeLLMServer, FaultPlan, LatencyModel
from tests.support.fake import claude_client


@pytest.fixture(scope="module")
def shared_server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(seed=42, latency=LatencyModel.none()) as running:
        yield running


@pytest.fixture
def server(shared_server: FakeLLMServer) -> Iterator[FakeLLMServer]:
    """The module's server, with no faults planned whatever the previous test set."""
    shared_server.set_faults(FaultPlan())
    yield shared_server
    shared_server.set_faults(FaultPlan())


@pytest.fixture(scope="module")
def shared_client(shared_server: FakeLLMServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=shared_server.base_url, api_key="sk-test-secret", max_retries=0, timeout=10) as c:
        yield c


@pytest.fixture
def client(server: FakeLLMServer, shared_client: openai.OpenAI) -> openai.OpenAI:
    return shared_client


@pytest.fixture(scope="module")
def shared_claude(shared_server: FakeLLMServer) -> Iterator[anthropic.Anthropic]:
    with claude_client(shared_server) as c:
        yield c


@pytest.fixture
def claude(server: FakeLLMServer, shared_claude: anthropic.Anthropic) -> anthropic.Anthropic:
    """The real Anthropic client on the module's server."""
    return shared_claude
