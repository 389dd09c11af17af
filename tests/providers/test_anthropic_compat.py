"""The anthropic adapter under whichever anthropic release is installed (scripts/anthropic_matrix.sh runs this
file under each supported one): every private name of the SDK it relies on is pinned here, each fallback
keeps the user's calls working when such a name moves, and the supported range is the one the matrix runs."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import anthropic
import pytest
from packaging.version import Version

import llmmetrics
import llmmetrics.providers.anthropic as adapter
import llmmetrics.streams
from llmmetrics.fake import FakeLLMServer
from llmmetrics.providers import adapter_for, provider_for_client

from tests.support.anthropic_wire import FIXED_REQUEST_ID, claude_transport_client
from tests.support.claude import request
from tests.support.fake import claude_client
from tests.support.llm import Traced, recording_reader, stable
from tests.support.sdk_range import assert_range_is_the_matrix, declared_range


# -- each private name, pinned -------------------------------------------------------------------------------

def test_streams_iterate_the_iterator_set_on_the_instance(llm_server: FakeLLMServer) -> None:
    """Stream and AsyncStream iterate their ``_iterator``, and one set on the instance replaces the SDK's."""
    stream = claude_client(llm_server).messages.create(stream=True, **request())
    assert iter(getattr(stream, "_iterator")) is not None
    stream.close()
    stream._iterator = iter(["a", "b"])
    assert list(stream) == ["a", "b"]

    async def run() -> list[Any]:
        astream = await claude_client(llm_server, is_async=True).messages.create(stream=True, **request())
        await astream.close()

        async def items() -> Any:
            yield "c"
        astream._iterator = items()
        return [item async for item in astream]
    assert asyncio.run(run()) == ["c"]


def test_streams_build_each_event_through_their_clients_item_builder() -> None:
    """Stream and AsyncStream look up ``_client._process_response_data`` and call it with the parsed JSON of each
    event (``data=``, ``cast_to=``, ``response=``): what llmmetrics reads a stream's events from. The client
    is taken over before the stream's iterator exists (later 2.x make it from a copy of the stream)."""
    assert adapter.PARSED_HOOK
    assert llmmetrics.streams.builds_items_through_client(anthropic.Stream)
    assert llmmetrics.streams.builds_items_through_client(anthropic.AsyncStream)
    seen: list[Any] = []

    stream = claude_transport_client().messages.create(stream=True, **request(model="m"))
    stream._client = llmmetrics.streams.reading_client(stream, recording_reader(seen), None, None)
    events = list(stream)
    assert seen and all(type(d) is dict for d in seen)
    assert [d["type"] for d in seen] == [e.type for e in events]
    assert seen[0]["message"]["usage"]["input_tokens"] == events[0].message.usage.input_tokens


def test_stream_managers_keep_their_request_under_the_mangled_name(llm_server: FakeLLMServer) -> None:
    """messages.stream() returns a manager holding its request (a callable; async: an awaitable) as
    ``_MessageStreamManager__api_request`` / ``_AsyncMessageStreamManager__api_request``."""
    manager = claude_client(llm_server).messages.stream(**request())
    assert callable(manager.__dict__[adapter._PENDING_REQUEST[0]])
    amanager = claude_client(llm_server, is_async=True).messages.stream(**request())
    pending = amanager.__dict__[adapter._PENDING_REQUEST[1]]
    assert inspect.isawaitable(pending)
    pending.close()  # a coroutine never awaited: closed, as the test never enters the manager


def test_resources_know_their_client_and_cache_their_wrappers(llm_server: FakeLLMServer) -> None:
    """A resource's ``_client`` is its client; with_raw_response/with_streaming_response are instance caches."""
    for is_async in (False, True):
        client = claude_client(llm_server, is_async=is_async)
        for target in adapter.TARGETS:
            resource = target.resource_of(client)
            assert isinstance(resource, target.classes()[is_async]) and adapter.client_of(resource) is client
            for name in adapter.RESOURCE_CACHES:
                wrapper = getattr(resource, name)
                assert resource.__dict__[name] is wrapper


def test_async_raw_responses_parse_through_a_cache_the_adapter_can_fill(llm_server: FakeLLMServer) -> None:
    """AsyncAPIResponse has a sync ``_parse()`` and a ``_parsed_by_type`` cache keyed by ``_cast_to`` that its
    coroutine ``parse()`` returns from."""
    async def run() -> None:
        raw = await claude_client(llm_server, is_async=True).messages.with_raw_response.create(
            stream=True, **request())
        assert isinstance(raw, anthropic.AsyncAPIResponse) and not inspect.iscoroutinefunction(raw._parse)
        marker = object()
        raw._parsed_by_type[raw._cast_to] = marker
        assert await raw.parse() is marker
        await raw.http_response.aclose()
    asyncio.run(run())


def test_parsed_messages_carry_the_request_id_in_their_instance_dict() -> None:
    """A parsed message keeps the ``request-id`` header as a plain ``_request_id`` instance attribute."""
    message = claude_transport_client().messages.create(**request())
    assert message.__dict__["_request_id"] == FIXED_REQUEST_ID


def test_unset_sentinels_are_the_defaults_of_every_traced_method() -> None:
    """anthropic.NotGiven and anthropic.Omit are what an argument left out looks like."""
    for target in adapter.TARGETS:
        for cls in target.classes():
            defaults = [p.default for p in inspect.signature(getattr(cls, target.method)).parameters.values()
                        if p.default is not inspect.Parameter.empty and p.name != "timeout"]
            assert defaults and all(isinstance(d, adapter.UNSET) or d is None for d in defaults), cls


@pytest.mark.parametrize("make,provider", [
    (lambda: anthropic.Anthropic(api_key="k"), "anthropic"),
    (lambda: anthropic.AsyncAnthropic(api_key="k", base_url="http://127.0.0.1:1"), "anthropic"),
    (lambda: anthropic.Anthropic(api_key="k", base_url="http://localhost:11434"), "ollama"),
    (lambda: anthropic.AnthropicBedrock(aws_region="us-east-1", aws_access_key="a", aws_secret_key="s"), "bedrock"),
    (lambda: anthropic.AsyncAnthropicBedrock(aws_region="us-east-1", aws_access_key="a", aws_secret_key="s"),
     "bedrock"),
    (lambda: anthropic.AnthropicVertex(region="us-east5", project_id="p", access_token="t"), "vertex"),
    (lambda: anthropic.AsyncAnthropicVertex(region="us-east5", project_id="p", access_token="t"), "vertex"),
])
def test_every_client_class_is_dispatched_to_the_adapter_with_its_provider(make: Any, provider: str) -> None:
    """Each client class is the anthropic adapter's, labelled by class (Bedrock, Vertex) or base URL."""
    client = make()
    assert adapter_for(client) is adapter and provider_for_client(client) == provider
    assert llmmetrics.instrument(client) is client and llmmetrics.is_instrumented(client)
    llmmetrics.uninstrument(client)
    assert not llmmetrics.is_instrumented(client)


# -- the fallbacks -------------------------------------------------------------------------------------------------

def test_a_stream_manager_whose_request_moved_is_left_untouched(traced: Traced, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the manager kept its request elsewhere, the helper works exactly as bare (untraced), counted once."""
    monkeypatch.setattr(adapter, "_PENDING_REQUEST", ("_moved", "_moved"))

    def helper(client: Any) -> Any:
        with client.messages.stream(**request(model="m")) as stream:
            return stream.get_final_message().model_dump()
    assert helper(llmmetrics.instrument(claude_transport_client())) == helper(claude_transport_client())
    assert traced.records() == []
    assert traced.value("llmmetrics_instrumentation_errors_total", stage="call") == 1


def test_streams_pass_untouched_when_their_iterator_moved(traced: Traced, monkeypatch: pytest.MonkeyPatch) -> None:
    """If streams kept their items elsewhere, the stream is returned untouched: its latency and outcome still
    recorded, the failure counted."""
    import llmmetrics.streams

    monkeypatch.setattr(llmmetrics.streams, "_ITERATOR", "_moved")

    def events(client: Any) -> list[Any]:
        return [e.model_dump() for e in client.messages.create(stream=True, **request(model="m"))]
    assert events(llmmetrics.instrument(claude_transport_client())) == events(claude_transport_client())
    record = traced.only_record()
    assert record["status"] == "success" and record["provider_request_id"] == FIXED_REQUEST_ID
    assert traced.value("llmmetrics_instrumentation_errors_total", stage="stream") == 1


def test_events_read_from_the_models_give_the_same_records(traced: Traced, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where events are not built through the client (PARSED_HOOK False), llmmetrics reads each event's model
    as it passes: the user sees the same events and the records (raw stream, helper) are the same."""
    client = llmmetrics.instrument(claude_transport_client())

    def runs() -> list[Any]:
        raw = [e.model_dump() for e in client.messages.create(stream=True, **request(model="m"))]
        with client.messages.stream(**request(model="m")) as stream:
            text = list(stream.text_stream)
        return [raw, text]
    from_json = runs()
    monkeypatch.setattr(adapter, "PARSED_HOOK", False)
    assert runs() == from_json
    records = traced.records()
    assert len(records) == 4 and all(r["status"] == "success" for r in records)
    assert [stable(r) for r in records[:2]] == [stable(r) for r in records[2:]]
    assert records[0]["output"] == "Hi there" and records[0]["output_tokens"] == 4
    assert records[0]["input_tokens"] == 9 and records[0]["finish_reason"] == "end_turn"
    assert all(r["ttft_ms"] is not None for r in records)


# -- the supported range -------------------------------------------------------------------------------------------

def test_the_declared_anthropic_range_is_what_the_matrix_runs() -> None:
    """The anthropic extra's range starts at the matrix's oldest release and ends after its newest major; the
    docs name each tested release."""
    assert_range_is_the_matrix("anthropic", "anthropic_matrix.sh", "anthropic.md")


def test_the_installed_anthropic_is_in_the_declared_range() -> None:
    """The release this run tests against is one llmmetrics declares it supports."""
    low, high = declared_range("anthropic")
    assert low <= Version(anthropic.__version__) < high
