"""The openai adapter under whichever openai release is installed (scripts/openai_matrix.sh runs this file
under each supported one): every private name of the SDK it relies on is pinned here, each fallback keeps
the user's calls working when such a name moves, and the supported range is the one the matrix runs."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import openai
import pytest
from packaging.version import Version

import llmmetrics
import llmmetrics.providers.openai as adapter
import llmmetrics.streams
from llmmetrics.providers import openai_compat
from llmmetrics.providers.openai_compat import REQUEST_ID_HEADER

from tests.support.llm import Traced, make_client, recording_reader, stable
from tests.support.sdk_range import assert_range_is_the_matrix, declared_range
from tests.support.wire import FIXED_REQUEST_ID, transport_client

REPO = Path(__file__).resolve().parents[2]
MESSAGES = [{"role": "user", "content": "hi"}]


# -- each private name, pinned -------------------------------------------------------------------------------

def test_with_raw_response_returns_the_legacy_response_class(llm_server: Any) -> None:
    """openai._legacy_response.LegacyAPIResponse is what with_raw_response returns, sync and async."""
    from openai._legacy_response import LegacyAPIResponse

    raw = make_client(llm_server).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)

    async def run() -> Any:
        return await make_client(llm_server, is_async=True).embeddings.with_raw_response.create(
            model="text-embedding-3-small", input="x")
    for result in (raw, asyncio.run(run())):
        assert type(result) is LegacyAPIResponse and openai_compat.is_raw_response(result)
        assert result.headers.get(REQUEST_ID_HEADER) == result.parse()._request_id
    assert not openai_compat.is_raw_response(raw.parse())


def test_raw_requests_are_marked_and_never_altered(traced: Traced, client: Any, llm_server: Any) -> None:
    """with_raw_response marks its request (X-Stainless-Raw-Response), so a raw stream goes out unchanged."""
    client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES, stream=True).parse().close()
    sent = llm_server.requests[-1]
    assert {k.lower(): v for k, v in sent.headers.items()}["x-stainless-raw-response"] == "true"
    assert "stream_options" not in sent.json
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True).close()
    assert llm_server.requests[-1].json["stream_options"] == {"include_usage": True}


def test_streams_read_their_items_from_the_iterator_llmmetrics_wraps(llm_server: Any) -> None:
    """Stream and AsyncStream iterate the private ``_iterator`` their __init__ sets (the attribute wrapped)."""
    from llmmetrics.streams import wrappable

    assert wrappable(openai.Stream) and wrappable(openai.AsyncStream) and adapter._WRAPPABLE
    stream = make_client(llm_server).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    stream.close()
    stream._iterator = iter(["a", "b"])
    assert list(stream) == ["a", "b"]

    async def run() -> list[Any]:
        astream = await make_client(llm_server, is_async=True).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True)
        await astream.close()

        async def items() -> Any:
            yield "c"
        astream._iterator = items()
        return [item async for item in astream]
    assert asyncio.run(run()) == ["c"]


def test_streams_build_each_item_through_their_clients_item_builder(llm_server: Any) -> None:
    """Stream and AsyncStream look up ``_client._process_response_data`` once and call it with the parsed JSON of
    each event (``data=``, ``cast_to=``, ``response=``): what llmmetrics reads a stream's chunks from."""
    assert openai_compat.PARSED_HOOK
    seen: list[Any] = []

    stream = make_client(llm_server).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                                              stream_options={"include_usage": True})
    stream._client = llmmetrics.streams.reading_client(stream, recording_reader(seen), None, None)
    chunks = list(stream)
    assert seen and all(type(d) is dict for d in seen)
    assert [d["choices"] for d in seen] == [c.model_dump(exclude_unset=True)["choices"] for c in chunks]
    assert seen[-1]["usage"]["completion_tokens"] == chunks[-1].usage.completion_tokens


def test_a_stream_class_that_builds_its_items_otherwise_is_not_hooked() -> None:
    """If a release stopped building items through its client's ``_process_response_data``, or called it
    differently, PARSED_HOOK would be False for it (and llmmetrics would read the models instead)."""
    class Elsewhere(openai.Stream):  # type: ignore[type-arg]
        def __stream__(self) -> Any:
            for sse in self._iter_events():
                yield sse.json()

    class OtherArguments(openai.Stream):  # type: ignore[type-arg]
        def __stream__(self) -> Any:
            build = self._client._process_response_data
            for sse in self._iter_events():
                yield build(sse.json(), self._cast_to, self.response)

    assert llmmetrics.streams.builds_items_through_client(openai.Stream)
    assert llmmetrics.streams.builds_items_through_client(openai.AsyncStream)
    assert not llmmetrics.streams.builds_items_through_client(Elsewhere)
    assert not llmmetrics.streams.builds_items_through_client(OtherArguments)


def test_resources_know_their_client_and_cache_their_wrappers(llm_server: Any) -> None:
    """A resource's ``_client`` is its client; with_raw_response/with_streaming_response are instance caches."""
    client = make_client(llm_server)
    for target in adapter.TARGETS:
        resource = target.resource_of(client)
        assert isinstance(resource, target.classes()[0])
        assert openai_compat.client_of(resource) is client
        for name in adapter.RESOURCE_CACHES:
            wrapper = getattr(resource, name)
            assert resource.__dict__[name] is wrapper
    aclient = make_client(llm_server, is_async=True)
    assert all(isinstance(t.resource_of(aclient), t.classes()[1]) for t in adapter.TARGETS)


def test_parsed_responses_carry_the_request_id_in_their_instance_dict(llm_server: Any) -> None:
    """openai sets ``_request_id`` (the x-request-id header) as a plain instance attribute of a parsed answer."""
    raw = make_client(llm_server).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    parsed = raw.parse()
    assert parsed.__dict__["_request_id"] == raw.headers[REQUEST_ID_HEADER]
    assert openai_compat.request_id_of(parsed) == parsed._request_id


def test_unset_sentinels_are_the_defaults_of_every_traced_method() -> None:
    """openai.NotGiven and openai.Omit are public in every release and are what an argument left out looks like."""
    assert openai.NotGiven in openai_compat.UNSET and openai.Omit in openai_compat.UNSET
    for target in adapter.TARGETS:
        for cls in target.classes():
            defaults = [p.default for p in inspect.signature(getattr(cls, target.method)).parameters.values()
                        if p.default is not inspect.Parameter.empty and p.name not in ("stream", "timeout")]
            assert defaults and all(isinstance(d, openai_compat.UNSET) or d is None for d in defaults), cls


def test_usage_details_are_read_from_models_and_from_plain_dicts() -> None:
    """Cached and reasoning tokens are read whether the release models the detail (1.67+) or keeps a dict (1.66)."""
    from openai.types import CompletionUsage
    from openai.types.responses import ResponseUsage

    responses = ResponseUsage.model_validate({"input_tokens": 9, "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
                                              "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 2},
                                              "total_tokens": 14})
    assert adapter.read_usage("responses", responses) == (9, 5, 4, 2, None, None)
    chat = CompletionUsage.model_validate({"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14,
                                           "prompt_tokens_details": {"cached_tokens": 4},
                                           "completion_tokens_details": {"reasoning_tokens": 2}})
    assert adapter.read_usage("chat", chat) == (9, 5, 4, 2, None, None)
    bare = CompletionUsage.model_validate({"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14})
    assert adapter.read_usage("chat", bare) == (9, 5, None, None, None, None)
    assert llmmetrics.streams.field({"cached_tokens": 3}, "cached_tokens") == 3
    assert llmmetrics.streams.field(None, "cached_tokens") is None


# -- the fallbacks -------------------------------------------------------------------------------------------------

def _raw_calls(client: Any) -> list[Any]:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    stream = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    return [raw.parse().model_dump(), dict(raw.headers), [c.model_dump() for c in stream.parse()]]


def test_raw_responses_are_recognised_without_the_private_class(traced: Traced, monkeypatch: pytest.MonkeyPatch) -> None:
    """If LegacyAPIResponse moved, raw responses are recognised by their shape: traced, and unchanged."""
    monkeypatch.setattr(openai_compat, "RAW_RESPONSE_TYPES", ())
    monkeypatch.setattr(adapter, "RAW_RESPONSE_TYPES", ())
    assert _raw_calls(llmmetrics.instrument(transport_client())) == _raw_calls(transport_client())
    records = traced.records()
    assert [r["provider_request_id"] for r in records] == [FIXED_REQUEST_ID, FIXED_REQUEST_ID]
    assert records[0]["input_tokens"] == 5 and records[1]["output"] == "abc"


def test_calls_work_when_the_private_raw_response_module_is_gone(tmp_path: Path) -> None:
    """With openai._legacy_response unimportable, llmmetrics imports and traces raw and plain calls."""
    code = f"""
import sys
import openai
sys.modules["openai._legacy_response"] = None  # as if it had moved
import llmmetrics
from prometheus_client import CollectorRegistry
from llmmetrics.fake_server import FakeLLMServer
from llmmetrics.providers import openai_compat
assert openai_compat.RAW_RESPONSE_TYPES == ()
rt = llmmetrics.configure(registry=CollectorRegistry(), trace_file={str(tmp_path / "t.jsonl")!r})
with FakeLLMServer(seed=1) as server:
    client = llmmetrics.instrument(openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0))
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=[{{"role": "user", "content": "hi"}}])
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{{"role": "user", "content": "hi"}}])
    assert raw.parse().choices and reply.choices
    assert rt.flush(10)
ok = rt.registry.get_sample_value("llm_requests_total", {{"provider": "openai_compatible", "model": "gpt-4o-mini",
                                                         "operation": "chat", "status": "ok"}})
assert ok == 2, ok
print("traced", int(ok))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["traced", "2"]


def test_streams_pass_untouched_when_their_iterator_moved(traced: Traced, monkeypatch: pytest.MonkeyPatch) -> None:
    """If streams kept their items elsewhere, llmmetrics asks for nothing extra and returns the stream untouched."""
    import llmmetrics.streams

    monkeypatch.setattr(llmmetrics.streams, "_ITERATOR", "_moved")
    monkeypatch.setattr(adapter, "_WRAPPABLE", llmmetrics.streams.wrappable(openai.Stream))
    assert adapter._WRAPPABLE is False

    def chunks(client: Any) -> list[Any]:
        return [c.model_dump() for c in client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                                                        stream=True)]
    assert chunks(llmmetrics.instrument(transport_client())) == chunks(transport_client())
    record = traced.only_record()
    assert record["status"] == "success" and record["provider_request_id"] == FIXED_REQUEST_ID
    assert traced.value("llmmetrics_instrumentation_errors_total", stage="stream") == 1


def _stream_runs(client: Any) -> list[Any]:
    """What a user sees of each kind of stream: chat (plain, usage asked for, tool calls) and Responses."""
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    seen = [[c.model_dump(exclude_unset=True) for c in client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, **extra)]
        for extra in ({}, {"stream_options": {"include_usage": True}}, {"tools": tools})]
    seen.append([e.type for e in client.responses.create(model="gpt-4.1-mini", input="hi", stream=True)])
    return seen


def test_streams_read_from_the_models_give_the_same_records(traced: Traced, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where items are not built through the client (PARSED_HOOK False), llmmetrics reads each item's model as
    it passes: the user sees the same items and the records are the same as from the parsed JSON."""
    client = llmmetrics.instrument(transport_client())
    from_json = _stream_runs(client)
    monkeypatch.setattr(adapter, "PARSED_HOOK", False)
    from_models = _stream_runs(client)
    records = traced.records()
    assert len(records) == 8 and all(r["status"] == "success" for r in records)
    assert [stable(r) for r in records[:4]] == [stable(r) for r in records[4:]]
    assert records[0]["output"] == "abc" and records[0]["output_tokens"] == 3
    assert records[2]["tool_calls"] == [{"id": "call_1", "name": "lookup", "arguments": '{"order": "1234"}'}]
    assert records[2]["finish_reason"] == "tool_calls" and records[3]["output"] == "Hi there"
    assert all(r["ttft_ms"] is not None for r in records)
    # the chunks the user sees: the same, except that read from models, the "usage": null the API adds to every
    # chunk when llmmetrics asks for usage stays set (runs 0 and 2; in run 1 the user asked)
    def without_null_usage(run: list[Any]) -> list[Any]:
        return [{k: v for k, v in c.items() if k != "usage" or v is not None} for c in run]
    assert from_json[1] == from_models[1] and from_json[3] == from_models[3]
    assert [from_json[0], from_json[2]] == [without_null_usage(from_models[0]), without_null_usage(from_models[2])]
    assert from_json[0] != from_models[0]


def test_a_stream_without_an_item_builder_is_read_from_its_models(traced: Traced,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream whose client has no ``_process_response_data`` keeps its client; its chunks are read from their
    models: the same chunks for the user (usage chunk withheld), the same record."""
    assert llmmetrics.streams.reading_client(object(), lambda *a: None, None, None) is None
    monkeypatch.setattr(adapter, "reading_client", lambda *a: None)

    def chunks(client: Any) -> list[Any]:
        return [c.model_dump() for c in client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                                                        stream=True)]
    assert chunks(llmmetrics.instrument(transport_client())) == chunks(transport_client())
    record = traced.only_record()
    assert record["output"] == "abc" and record["output_tokens"] == 3 and record["ttft_ms"] is not None


# -- the supported range -------------------------------------------------------------------------------------------

def test_the_declared_openai_range_is_what_the_matrix_runs() -> None:
    """pyproject's openai range starts at the matrix's oldest release and ends after its newest major, and the
    matrix has a release of every major in between; the docs name each tested release."""
    assert_range_is_the_matrix("openai", "openai_matrix.sh", "sdk-versions.md")


def test_the_installed_openai_is_in_the_declared_range() -> None:
    """The release this run tests against is one llmmetrics declares it supports."""
    low, high = declared_range("openai")
    assert low <= Version(openai.__version__) < high
