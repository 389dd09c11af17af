"""A small production day through the real wrapper: the instrumented ``openai`` client against two fake LLM
servers (one fast, one with a 1 s first token), with users, feature flags, every operation, a stream,
failures and an agent run. The trace-file, Loki-sink, and LogQL tests all read the records it makes.

>>> with llm_clients() as clients:                                                     # doctest: +SKIP
...     run_trace_id = trace_calls(clients, trace_file="traces.jsonl", loki_url="http://127.0.0.1:3100")
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from prometheus_client import CollectorRegistry

import llmmetrics
from llmmetrics.fake import FakeLLMServer, LatencyModel
from tests.support.loki_server import LokiServer

__all__ = ["CALLS", "RUNS", "Workload", "llm_clients", "make_calls", "read_records", "trace_calls", "workload"]

SLOW = LatencyModel(time_to_first_token=(1.0, 1.0), per_token=(0.0, 0.0), slow_share=0.0)
FAULT = {"x-fake-fault": "rate_limit"}
#: What make_calls records: 21 call records and 2 run records.
CALLS, RUNS = 21, 2


def make_calls(client: openai.OpenAI, slow_client: openai.OpenAI) -> str:
    """The calls; returns the agent run's trace id."""
    ask = [{"role": "user", "content": "what is the invoice total?"}]
    with llmmetrics.bind_context(user_id="u-42", feature_flags={"new_prompt": True}):
        client.chat.completions.create(model="gpt-4o-mini", messages=ask)
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="gpt-4o-mini", messages=ask, extra_headers=FAULT)
    with llmmetrics.bind_context(user_id="u-7", request_id="r-9", feature_flags={"new_prompt": False}):
        client.embeddings.create(model="text-embedding-3-small", input="hello")
        stream = client.chat.completions.create(model="gpt-4o", messages=ask, stream=True,
                                                stream_options={"include_usage": True})
        for _ in stream:
            pass
        client.responses.create(model="gpt-4o-mini", input="summarise the refund policy")
        slow_client.chat.completions.create(model="gpt-4o-mini", messages=ask)
    with llmmetrics.bind_context(user_id="u-42", feature_flags={"new_prompt": True}), \
            llmmetrics.trace_run("planner") as run:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "plan"}])
        with llmmetrics.trace_run("search"), pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="gpt-4o", messages=ask, extra_headers={"x-fake-fault": "server_error"})
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "answer"}])
    for i in range(12):  # more traffic, written batch by batch (a small trace file rotates several times)
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"filler {i}"}])
        assert llmmetrics.flush(10)
    return run.trace_id


@contextlib.contextmanager
def llm_clients() -> Iterator[tuple[openai.OpenAI, openai.OpenAI]]:
    """A fast and a slow fake LLM server, each with a real openai client."""
    with FakeLLMServer(seed=3) as fast, FakeLLMServer(seed=4, latency=SLOW) as slow, \
            openai.OpenAI(base_url=fast.base_url, api_key="sk-test-key-0123456789abcdef", max_retries=0) as c1, \
            openai.OpenAI(base_url=slow.base_url, api_key="sk-test-key-0123456789abcdef", max_retries=0) as c2:
        yield c1, c2


def trace_calls(clients: tuple[openai.OpenAI, openai.OpenAI], **options: Any) -> str:
    """Make the calls through the real wrapper configured with ``options``; then restore a quiet default."""
    llmmetrics.configure(service="checkout", env="test", registry=CollectorRegistry(), **options)
    client, slow_client = (llmmetrics.instrument(c) for c in clients)
    try:
        trace_id = make_calls(client, slow_client)
        assert llmmetrics.flush(10)
        return trace_id
    finally:
        llmmetrics.uninstrument(client)
        llmmetrics.uninstrument(slow_client)
        llmmetrics.shutdown(2.0)
        llmmetrics.configure(trace_file=None, registry=CollectorRegistry())


@dataclasses.dataclass(frozen=True)
class Workload:
    """The calls above, written once per session to a rotating trace file and to a tenant of the real Loki."""

    path: Path  # the live trace file; backups beside it
    trace_id: str  # of the agent run
    tenant: str
    loki: LokiServer

    def records(self) -> list[dict[str, Any]]:
        return read_records(self.path)


def read_records(path: Path) -> list[dict[str, Any]]:
    """Reference reader: every line of every rotated file, oldest file first, with the json module."""
    def age(p: Path) -> int:
        return -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0

    return [json.loads(line) for file in sorted(path.parent.glob(path.name + "*"), key=age)
            for line in file.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def workload(real_loki: LokiServer, tmp_path_factory: pytest.TempPathFactory) -> Workload:
    """The workload through the real wrapper into a 2 KB rotating trace file (many backups) and the real Loki."""
    path = tmp_path_factory.mktemp("workload") / "traces.jsonl"
    tenant = "workload"
    with llm_clients() as clients:
        trace_id = trace_calls(clients, trace_file=str(path), trace_file_max_bytes=2000, trace_file_backups=100,
                               loki_url=real_loki.url, loki_tenant=tenant, loki_batch_wait_seconds=0.05)
    real_loki.wait_for_count(tenant, '{service_name="checkout"}', CALLS + RUNS)
    return Workload(path, trace_id, tenant, real_loki)
