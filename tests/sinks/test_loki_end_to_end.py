"""End to end: the real openai client, instrumented, against the fake LLM server, shipping to the Loki stand-in."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
from tests.support.loki_contract_server import LokiContractServer
from prometheus_client import CollectorRegistry

import llmmetrics
from llmmetrics.fake import FakeLLMServer


@pytest.fixture()
def loki() -> Iterator[LokiContractServer]:
    with LokiContractServer() as server:
        yield server


def test_a_traced_call_reaches_loki_findable_by_trace_id(loki: LokiContractServer) -> None:
    """configure(loki_url=...) wires the Loki sink: each call's record arrives with labels and trace metadata."""
    registry = CollectorRegistry()
    llmmetrics.configure(loki_url=loki.url, service="checkout", env="test", trace_file=None, registry=registry,
                         loki_batch_wait_seconds=0.05)
    try:
        with FakeLLMServer(seed=7) as server, \
                openai.OpenAI(base_url=server.base_url, api_key="sk-test-secret-0123456789", max_retries=0) as c:
            client = llmmetrics.instrument(c)
            with llmmetrics.bind_context(user_id="u-42"):
                client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
            assert llmmetrics.flush(10)
        (entry,) = loki.accepted
        line = json.loads(entry.line)
        assert entry.labels == {"service_name": "checkout", "env": "test", "provider": line["provider"],
                                "level": "info"}
        assert line["kind"] == "call" and line["status"] == "success"
        assert entry.metadata["trace_id"] == line["trace_id"] and entry.metadata["call_id"] == line["call_id"]
        assert entry.metadata["user_id"] == "u-42"
        assert entry.ts_ns == line["ts_ns"]
        assert "sk-test-secret" not in entry.line
        assert registry.get_sample_value("llmmetrics_loki_pushes_total", {"outcome": "success"}) >= 1
    finally:
        llmmetrics.shutdown(2.0)
        llmmetrics.configure(trace_file=None, registry=CollectorRegistry())
