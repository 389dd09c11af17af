"""Streams, raw responses and user-visible identity: what user code sees is exactly what the bare client gives."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import openai
import orjson
import pytest

import llmmetrics

from tests.support.faults import unkeeping
from tests.support.llm import Traced, make_client
from tests.support.wire import transport_client

MESSAGES = [{"role": "user", "content": "Tell me a story."}]


def test_early_break_finishes_the_record_once(traced: Traced, client: Any) -> None:
    """Breaking out of a stream and dropping it ends the call: one success record with the partial output."""
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    seen = []
    for chunk in stream:
        seen.append(chunk)
        if len(seen) == 3:
            break
    del stream, chunk
    gc.collect()
    record = traced.only_record()
    assert record["status"] == "success" and record["ttft_ms"] is not None
    assert record["output"] == "".join(c.choices[0].delta.content or "" for c in seen)
    assert traced.value("llm_in_flight_requests", provider="openai_compatible", model="gpt-4o-mini") == 0


def test_close_and_with_block_finish_the_record(traced: Traced, client: Any) -> None:
    """close() and leaving a with-block each finish the call exactly once."""
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    next(iter(stream))
    stream.close()
    stream.close()
    with client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True) as stream2:
        next(iter(stream2))
    assert len(traced.records()) == 2
    assert traced.value("llm_requests_total", provider="openai_compatible", model="gpt-4o-mini", operation="chat",
                        status="ok") == 2


def test_async_stream_close_and_break(traced: Traced, async_client: Any) -> None:
    """Async streams: aclose via async with, and break, each give one record."""
    async def run() -> None:
        async with await async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                                              stream=True) as stream:
            async for _chunk in stream:
                break
        stream2 = await async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        async for _chunk in stream2:
            pass
    asyncio.run(run())
    assert [r["status"] for r in traced.records()] == ["success", "success"]


def test_user_requested_usage_chunk_is_passed_through(traced: Traced, client: Any) -> None:
    """When the user asks for usage, they get the usage-only chunk exactly as the API sends it."""
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert traced.only_record()["input_tokens"] == chunks[-1].usage.prompt_tokens


def test_stream_usage_is_requested_but_not_shown(traced: Traced, client: Any, llm_server: Any) -> None:
    """Without include_usage from the user, llmmetrics asks the API for it and withholds the extra chunk."""
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    body = llm_server.requests[-1].json
    assert body["stream_options"] == {"include_usage": True}
    assert all(c.choices for c in chunks)
    assert traced.only_record()["input_tokens"] > 0


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_with_raw_response_is_traced_and_unchanged(traced: Traced, client: Any, stream: bool) -> None:
    """with_raw_response returns the raw response object; parse() gives the same object we measured."""
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES, stream=stream)
    assert isinstance(raw, openai._legacy_response.LegacyAPIResponse)
    parsed = raw.parse()
    record_usage: Any
    if stream:
        # a raw stream's bytes are the user's to read, so llmmetrics does not ask for usage there: the
        # stream is exactly the bare one, and its cost is unknown (counted as unpriced)
        chunks = list(parsed)
        assert chunks and all(c.choices for c in chunks)
        record_usage = None
    else:
        record_usage = parsed.usage.prompt_tokens
    record = traced.only_record()
    assert record["provider_request_id"] == raw.headers["x-request-id"]
    assert record["input_tokens"] == record_usage
    assert record["status"] == "success"


def test_async_with_raw_response(traced: Traced, async_client: Any) -> None:
    """The async raw response is traced the same way."""
    async def run() -> Any:
        raw = await async_client.embeddings.with_raw_response.create(model="text-embedding-3-small", input="x")
        return raw.parse()
    parsed = asyncio.run(run())
    assert traced.only_record()["input_tokens"] == parsed.usage.prompt_tokens


# -- identity: the same fixed wire answers through a bare and an instrumented client -------------------------

def test_instrumented_client_returns_identical_objects(traced: Traced) -> None:
    """Same wire answer → equal response, equal chunk sequence, equal exception with and without us. A stream
    for which llmmetrics asked usage gives the user the chunks the bare client gets without asking: the
    ``"usage": null`` the API then adds to every chunk is left out, the usage chunk withheld."""
    bare, ours = transport_client(), llmmetrics.instrument(transport_client())
    for kwargs in ({}, {"temperature": 0.2, "max_tokens": 5}):
        a = bare.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, **kwargs)
        b = ours.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, **kwargs)
        assert type(a) is type(b) and a.model_dump() == b.model_dump() and a._request_id == b._request_id
    for options in (None, {"include_usage": True}):
        extra = {"stream_options": options} if options else {}
        sa = bare.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True, **extra)
        sb = ours.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True, **extra)
        assert type(sa) is type(sb)
        # every field, and which fields were sent (what to_dict() and to_json() give)
        assert [(c.model_dump(), c.model_dump(exclude_unset=True)) for c in sa] == [
            (c.model_dump(), c.model_dump(exclude_unset=True)) for c in sb]
    errors = []
    for client in (bare, ours):
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(model="broken", messages=MESSAGES)
        errors.append((type(caught.value), str(caught.value), caught.value.status_code, caught.value.body))
    assert errors[0] == errors[1]
    assert len(traced.records()) == 5


def test_async_instrumented_client_returns_identical_objects(traced: Traced) -> None:
    """The async client: equal responses and chunk sequences with and without instrumentation."""
    async def run() -> None:
        bare, ours = transport_client(True), llmmetrics.instrument(transport_client(True))
        a = await bare.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        b = await ours.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert a.model_dump() == b.model_dump()
        sa = await bare.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        sb = await ours.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        assert type(sa) is type(sb)
        assert [(c.model_dump(), c.model_dump(exclude_unset=True)) async for c in sa] == [
            (c.model_dump(), c.model_dump(exclude_unset=True)) async for c in sb]
    asyncio.run(run())
    assert [r["input_tokens"] for r in traced.records()] == [5, 5]


def test_messages_mutated_after_the_call_do_not_change_the_record(traced: Traced, client: Any) -> None:
    """The prompt is snapshotted at call time; appending the reply afterwards (agent loops do) is not recorded."""
    messages = [{"role": "user", "content": "hi"}]
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    messages.append({"role": "assistant", "content": reply.choices[0].message.content})
    assert traced.only_record()["messages"] == [{"role": "user", "content": "hi"}]


def test_failure_inside_instrumentation_never_reaches_the_user(traced: Traced, llm_server: Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """If reading the response breaks inside llmmetrics, the user still gets the response; the failure is counted."""
    import llmmetrics.providers.openai as adapter

    def broken(call: Any) -> None:
        raise RuntimeError("bug in llmmetrics")
    monkeypatch.setattr(adapter, "read_response", broken)
    client = llmmetrics.instrument(make_client(llm_server))
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert reply.choices[0].message.content
    assert traced.value("llmmetrics_instrumentation_errors_total", stage="record") == 1
    assert traced.only_record()["status"] == "success"


@pytest.mark.parametrize("parsed", [True, False], ids=["from-parsed-json", "from-models"])
def test_failure_reading_a_chunk_never_breaks_the_users_stream(traced: Traced, monkeypatch: pytest.MonkeyPatch,
                                                               parsed: bool) -> None:
    """If reading chunks breaks inside llmmetrics, every chunk still reaches the user and the call is recorded,
    whichever way the chunks are read (their parsed JSON, or their models)."""
    import llmmetrics.providers.openai as adapter
    if parsed:
        assert adapter.PARSED_HOOK
        monkeypatch.setattr(adapter, "_chat_reader", unkeeping(adapter._chat_reader, "chunks"))
    else:
        def broken(call: Any, chunk: Any, hide_usage: bool) -> bool:
            raise RuntimeError("bug in llmmetrics")
        monkeypatch.setattr(adapter, "PARSED_HOOK", False)
        monkeypatch.setattr(adapter, "_observe_chat", broken)
    client = llmmetrics.instrument(transport_client())
    ours = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    bare = list(transport_client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    # the usage chunk llmmetrics asked for is still withheld
    assert [c.model_dump() for c in ours] == [c.model_dump() for c in bare]
    assert all(c.choices for c in ours) and ours[-1].choices[0].finish_reason == "stop" and len(ours) >= 3
    assert traced.value("llmmetrics_instrumentation_errors_total", stage="stream") == 1
    assert traced.only_record()["status"] == "success"


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_the_usage_chunk_llmmetrics_asks_for_is_never_built(traced: Traced, llm_server: Any,
                                                            monkeypatch: pytest.MonkeyPatch, is_async: bool) -> None:
    """openai builds a model for each chunk the user sees and none for the usage chunk llmmetrics withholds:
    its usage is read from the parsed JSON. A user who asks for usage gets that chunk built, as without us."""
    import llmmetrics.providers.openai as adapter

    assert adapter.PARSED_HOOK
    client = llmmetrics.instrument(make_client(llm_server, is_async=is_async))
    built: list[Any] = []
    original = type(client)._process_response_data

    def counting(self: Any, *, data: Any, cast_to: Any, response: Any) -> Any:
        item = original(self, data=data, cast_to=cast_to, response=response)
        built.append(item)
        return item
    monkeypatch.setattr(type(client), "_process_response_data", counting)

    async def consume(stream: Any) -> list[Any]:
        return [c async for c in await stream]

    def streams(*requests: dict[str, Any]) -> list[list[Any]]:
        """Each request's chunks as the user sees them, and what openai built meanwhile."""
        made = [{"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True, **extra} for extra in requests]
        if not is_async:
            return [list(client.chat.completions.create(**kwargs)) for kwargs in made]

        async def run() -> list[list[Any]]:
            return [await consume(client.chat.completions.create(**kwargs)) for kwargs in made]
        return asyncio.run(run())

    seen, asked = streams({}, {"stream_options": {"include_usage": True}})
    assert built == seen + asked and all(c.choices for c in seen)  # one model per chunk the user sees
    assert asked[-1].choices == [] and asked[-1].usage is not None
    records = traced.records()
    assert records[0]["input_tokens"] > 0 and records[0]["output_tokens"] > 0 and records[0]["output"]
    assert records[1]["output_tokens"] == asked[-1].usage.completion_tokens


TOOLS = [{"type": "function", "function": {"name": "lookup_order", "description": "Find an order by number.",
                                            "parameters": {"type": "object",
                                                           "properties": {"order": {"type": "string"}}}}}]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_tool_calls_are_recorded_as_the_user_sees_them(traced: Traced, client: Any, stream: bool) -> None:
    """The record's tool calls (id, name, arguments) are the ones the user reads, streamed deltas merged."""
    result = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, tools=TOOLS, stream=stream)
    if stream:
        seen: dict[int, dict[str, Any]] = {}
        for chunk in result:
            for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                entry = seen.setdefault(delta.index, {"id": None, "name": None, "arguments": ""})
                entry["id"] = delta.id or entry["id"]
                entry["name"] = (delta.function.name if delta.function else None) or entry["name"]
                entry["arguments"] += (delta.function.arguments if delta.function else None) or ""
        expected = [seen[i] for i in sorted(seen)]
    else:
        expected = [{"id": t.id, "name": t.function.name, "arguments": t.function.arguments}
                    for t in result.choices[0].message.tool_calls]
    record = traced.only_record()
    assert expected and expected[0]["name"] == "lookup_order" and orjson.loads(expected[0]["arguments"])
    assert record["tool_calls"] == expected
    assert record["finish_reason"] == "tool_calls"
