"""instrument()/uninstrument(): per client and process-wide, idempotent, symmetric; providers from base URLs."""

from __future__ import annotations

from typing import Any

import openai
import pytest

import llmmetrics
from llmmetrics.providers import provider_for_url

from tests.support.llm import Traced, make_client

MESSAGES = [{"role": "user", "content": "hi"}]
LABELS = {"provider": "openai_compatible", "model": "gpt-4o-mini", "operation": "chat", "status": "ok"}


def test_instrumenting_twice_never_counts_twice(traced: Traced, llm_server: Any) -> None:
    """instrument(client) twice, then process-wide too: still one count per call."""
    client = llmmetrics.instrument(llmmetrics.instrument(make_client(llm_server)))
    llmmetrics.instrument()
    llmmetrics.instrument()
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        other = make_client(llm_server)
        other.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    finally:
        llmmetrics.uninstrument()
    assert traced.value("llm_requests_total", **LABELS) == 2
    assert len(traced.records()) == 2


def test_process_wide_instrument_and_uninstrument_are_symmetric(traced: Traced, llm_server: Any) -> None:
    """instrument() traces every client, sync and async; uninstrument() restores the original methods."""
    from openai.resources.chat.completions.completions import AsyncCompletions, Completions
    originals = (Completions.create, AsyncCompletions.create)
    llmmetrics.instrument()
    assert llmmetrics.is_instrumented()
    make_client(llm_server).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    llmmetrics.uninstrument()
    assert (Completions.create, AsyncCompletions.create) == originals
    assert not llmmetrics.is_instrumented()
    make_client(llm_server).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert traced.value("llm_requests_total", **LABELS) == 1


def test_uninstrument_one_client(traced: Traced, llm_server: Any) -> None:
    """uninstrument(client) stops tracing that client only."""
    client = llmmetrics.instrument(make_client(llm_server))
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    llmmetrics.uninstrument(client)
    assert not llmmetrics.is_instrumented(client)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert traced.value("llm_requests_total", **LABELS) == 1


def test_with_options_copies_stay_instrumented(traced: Traced, llm_server: Any) -> None:
    """client.with_options(...) returns a client that is traced too."""
    client = llmmetrics.instrument(make_client(llm_server))
    client.with_options(timeout=5).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert traced.value("llm_requests_total", **LABELS) == 1


def test_call_llm_with_tracing_counts_once_for_bare_and_instrumented_clients(traced: Traced, llm_server: Any) -> None:
    """The article's convenience function traces a bare client, and does not double count an instrumented one."""
    bare = make_client(llm_server)
    reply = llmmetrics.call_llm_with_tracing(bare, "gpt-4o-mini", MESSAGES, temperature=0)
    assert reply.choices[0].message.content
    assert not llmmetrics.is_instrumented(bare)
    llmmetrics.call_llm_with_tracing(llmmetrics.instrument(make_client(llm_server)), "gpt-4o-mini", MESSAGES)
    assert traced.value("llm_requests_total", **LABELS) == 2
    assert [r["kwargs"] for r in traced.records()] == [{"temperature": 0}, {}]


def test_azure_client_gets_azure_provider(traced: Traced, llm_server: Any) -> None:
    """An AzureOpenAI client is labelled azure_openai whatever its endpoint (here a loopback server's 404)."""
    endpoint = llm_server.base_url.removesuffix("/v1")
    client = llmmetrics.instrument(openai.AzureOpenAI(api_key="k", api_version="2024-10-21",
                                                      azure_endpoint=endpoint, max_retries=0))
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    record = traced.only_record()
    assert record["provider"] == "azure_openai" and record["error"]["type"] == "NotFoundError"
    assert traced.value("llm_errors_total", provider="azure_openai", model="gpt-4o-mini", operation="chat",
                        error_type="NotFoundError") == 1


@pytest.mark.parametrize("url,provider", [
    ("https://api.openai.com/v1", "openai"),
    ("https://contoso.openai.azure.com/openai/deployments/gpt-4o", "azure_openai"),
    ("http://localhost:11434/v1", "ollama"),
    ("http://ollama.internal:8080/v1", "ollama"),
    ("http://vllm-0.gpu.svc:8000/v1", "vllm"),
    ("https://openrouter.ai/api/v1", "openrouter"),
    ("http://10.0.0.7:8000/v1", "openai_compatible"),
    ("not a url at all", "openai_compatible"),
])
def test_provider_is_derived_from_base_url(url: str, provider: str) -> None:
    """Providers map to a small fixed set of label values; unknown hosts never become labels."""
    assert provider_for_url(url) == provider


def test_configured_provider_overrides_detection(tmp_path: Any, llm_server: Any) -> None:
    """Config(provider=...) names the provider for every client (e.g. a gateway the URL does not reveal)."""
    from prometheus_client import CollectorRegistry
    registry = CollectorRegistry()
    rt = llmmetrics.configure(registry=registry, trace_file=str(tmp_path / "t.jsonl"), provider="vllm")
    try:
        llmmetrics.instrument(make_client(llm_server)).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert rt.flush(10)  # the exporter counts the call
        assert registry.get_sample_value("llm_requests_total", {**LABELS, "provider": "vllm"}) == 1
    finally:
        rt.close(5)
