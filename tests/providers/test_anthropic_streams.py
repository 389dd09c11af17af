"""Claude streams and raw responses: what user code sees is exactly what the bare client gives — the same
objects, events, helper methods and exceptions — and each call is recorded once however the stream ends."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import anthropic
import httpx2
import pytest

import llmmetrics
from llmmetrics.fake import FakeLLMServer

from tests.support.anthropic_wire import FIXED_REQUEST_ID, claude_transport_client
from tests.support.claude import MESSAGES, call, request
from tests.support.fake import CLAUDE, claude_client
from tests.support.llm import Traced

LABELS = {"provider": "anthropic", "model": CLAUDE, "operation": "chat"}


def test_early_break_finishes_the_record_once(traced: Traced, claude: Any) -> None:
    """Breaking out of a raw stream and dropping it ends the call: one success with the text seen so far."""
    stream = claude.messages.create(stream=True, **request())
    seen = []
    for event in stream:
        seen.append(event)
        if sum(e.type == "content_block_delta" for e in seen) == 2:
            break
    del stream, event
    gc.collect()
    record = traced.only_record()
    assert record["status"] == "success" and record["ttft_ms"] is not None
    assert record["output"] == "".join(e.delta.text for e in seen if e.type == "content_block_delta")
    assert record["input_tokens"] is None and record["cost_usd"] is None  # closed before message_delta's usage
    assert traced.value("llm_in_flight_requests", provider="anthropic", model=CLAUDE) == 0


def test_close_and_with_blocks_finish_the_record_once(traced: Traced, claude: Any) -> None:
    """close() twice, a with-block around a raw stream, and leaving the helper's block early: one record each."""
    stream = claude.messages.create(stream=True, **request())
    next(iter(stream))
    stream.close()
    stream.close()
    with claude.messages.create(stream=True, **request()) as raw:
        next(iter(raw))
    with claude.messages.stream(**request()) as helper:
        for _text in helper.text_stream:
            break
    assert [r["status"] for r in traced.records()] == ["success"] * 3
    assert traced.value("llm_requests_total", **LABELS, status="ok") == 3


def test_stream_helper_gives_its_own_text_and_final_message(traced: Traced, claude: Any) -> None:
    """text_stream, get_final_message() and get_final_text() are the SDK's own; the record agrees with them."""
    with claude.messages.stream(**request()) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        assert stream.get_final_text() == text
    record = traced.only_record()
    assert record["output"] == text and record["output_tokens"] == final.usage.output_tokens
    assert record["provider_request_id"] == stream.request_id


def test_a_helper_never_entered_is_never_counted(traced: Traced, claude: Any, llm_server: FakeLLMServer) -> None:
    """messages.stream() sends nothing until its block is entered: without a block, no request and no record."""
    before = len(llm_server.requests)
    manager = claude.messages.stream(**request())
    assert isinstance(manager, anthropic.lib.streaming.MessageStreamManager)
    del manager
    assert len(llm_server.requests) == before
    assert traced.records() == [] and traced.value("llm_requests_total", **LABELS, status="ok") is None


def test_async_streams_and_helper(traced: Traced, async_claude: Any) -> None:
    """Async raw streams (break, full) and the async helper (text_stream, early exit): one record each."""
    async def run() -> None:
        async with await async_claude.messages.create(stream=True, **request()) as stream:
            async for _event in stream:
                break
        stream2 = await async_claude.messages.create(stream=True, **request())
        async for _event in stream2:
            pass
        async with async_claude.messages.stream(**request()) as helper:
            async for _text in helper.text_stream:
                pass
        async with async_claude.messages.stream(**request()) as helper:
            async for _text in helper.text_stream:
                break
    asyncio.run(run())
    records = traced.records()
    assert [r["status"] for r in records] == ["success"] * 4
    assert [r["input_tokens"] is not None for r in records] == [False, True, True, False]


# -- faults inside a stream pass through unchanged -----------------------------------------------------------------

MID_STREAM = {"stream_error": anthropic.APIStatusError, "reset": httpx2.ReadError, "stall": httpx2.ReadTimeout}


def _failure(client: Any, how: str, fault: str) -> tuple[type, str, Any]:
    with pytest.raises(Exception) as caught:
        call(client, how, False, fault)
    return type(caught.value), str(caught.value), getattr(caught.value, "status_code", None)


@pytest.mark.parametrize("fault", sorted(MID_STREAM))
@pytest.mark.parametrize("how", ["stream", "helper"])
def test_mid_stream_failures_reach_the_user_as_the_sdk_raises_them(traced: Traced, llm_server: FakeLLMServer,
                                                                   how: str, fault: str) -> None:
    """An in-stream error event (APIStatusError, status 200), a reset (httpx2.ReadError) and a stall
    (httpx2.ReadTimeout) are raised exactly as by the bare client, and recorded under that class."""
    bare = claude_client(llm_server, timeout=0.5)
    ours = llmmetrics.instrument(claude_client(llm_server, timeout=0.5))
    expected, got = _failure(bare, how, fault), _failure(ours, how, fault)
    assert got[0] is expected[0] is MID_STREAM[fault] and got[2] == expected[2]
    if fault != "stream_error":  # the error event's message carries the server's fresh request id
        assert got[1] == expected[1]
    record = traced.only_record()
    assert record["status"] == "error" and record["error"]["type"] == MID_STREAM[fault].__name__
    assert record["response_model"] == "claude-haiku-4-5-20251001"  # message_start came before the failure


def test_helper_failing_on_missing_usage_fails_as_bare_and_the_call_is_unpriced(traced: Traced,
                                                                                llm_server: FakeLLMServer) -> None:
    """Without usage the SDK's own helper fails at message_delta (AttributeError): the user sees that very
    failure; the call is recorded as the wire gave it, without usage (unpriced)."""
    bare = claude_client(llm_server)
    ours = llmmetrics.instrument(claude_client(llm_server))
    expected, got = _failure(bare, "helper", "missing_usage"), _failure(ours, "helper", "missing_usage")
    assert got[0] is expected[0] is AttributeError and got[1] == expected[1]
    record = traced.only_record()
    assert record["status"] == "success" and record["cost_usd"] is None
    assert traced.value("llm_unpriced_requests_total", provider="anthropic", model=CLAUDE) == 1


# -- raw responses ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_with_raw_response_is_traced_and_unchanged(traced: Traced, claude: Any, stream: bool) -> None:
    """with_raw_response returns the raw APIResponse; parse() gives the message or stream that was measured."""
    raw = claude.messages.with_raw_response.create(stream=stream, **request())
    assert isinstance(raw, anthropic.APIResponse)
    parsed = raw.parse()
    assert parsed is raw.parse()
    if stream:
        events = list(parsed)
        output_tokens = next(e for e in events if e.type == "message_delta").usage.output_tokens
    else:
        output_tokens = parsed.usage.output_tokens
    record = traced.only_record()
    assert record["provider_request_id"] == raw.headers["request-id"] and record["output_tokens"] == output_tokens
    assert (record["ttft_ms"] is not None) is stream


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_async_with_raw_response_is_traced_and_unchanged(traced: Traced, async_claude: Any, stream: bool) -> None:
    """The async raw response (whose parse() is a coroutine) is traced too: its usage, and its stream's events."""
    async def run() -> int:
        raw = await async_claude.messages.with_raw_response.create(stream=stream, **request())
        assert isinstance(raw, anthropic.AsyncAPIResponse)
        parsed = await raw.parse()
        assert parsed is await raw.parse()
        if not stream:
            return parsed.usage.output_tokens  # type: ignore[no-any-return]
        events = [e async for e in parsed]
        return next(e for e in events if e.type == "message_delta").usage.output_tokens  # type: ignore[no-any-return]
    output_tokens = asyncio.run(run())
    record = traced.only_record()
    assert record["output_tokens"] == output_tokens and (record["ttft_ms"] is not None) is stream


@pytest.mark.parametrize("how", ["create", "stream"])
def test_async_raw_response_with_a_broken_body_is_recorded_as_the_error_parse_raises(
        traced: Traced, async_claude: Any, how: str) -> None:
    """A raw async body that is not JSON: the user's parse() (or stream) raises JSONDecodeError, and the call is
    recorded with that error."""
    async def run() -> None:
        raw = await async_claude.messages.with_raw_response.create(stream=how == "stream",
                                                                   **request("invalid_json"))
        parsed = await raw.parse()
        async for _event in parsed:
            pass
    with pytest.raises(ValueError) as caught:
        asyncio.run(run())
    assert traced.only_record()["error"]["type"] == type(caught.value).__name__ == "JSONDecodeError"


# -- identity: the same fixed wire answers through a bare and an instrumented client -------------------------

def _everything(client: Any) -> list[Any]:
    message = client.messages.create(**request(model="m"))
    events = [e.model_dump() for e in client.messages.create(stream=True, **request(model="m"))]
    with client.messages.stream(**request(model="m")) as stream:
        helper = ([e.model_dump() for e in stream], stream.get_final_message().model_dump())
    raw = client.messages.with_raw_response.create(**request(model="m"))
    with pytest.raises(anthropic.OverloadedError) as caught:
        client.messages.create(**request(model="broken"))
    error = (type(caught.value), str(caught.value), caught.value.status_code, caught.value.body)
    return [message.model_dump(), message._request_id, events, helper, dict(raw.headers), raw.parse().model_dump(),
            error]


def test_instrumented_client_returns_identical_objects(traced: Traced) -> None:
    """Same wire answer → equal message, events, helper results, raw response and exception with and without us."""
    ours = llmmetrics.instrument(claude_transport_client())
    assert _everything(ours) == _everything(claude_transport_client())
    records = traced.records()
    assert len(records) == 5 and {r["provider_request_id"] for r in records} == {FIXED_REQUEST_ID}


def test_async_instrumented_client_returns_identical_objects(traced: Traced) -> None:
    """The async client: equal messages, events and helper results with and without instrumentation."""
    async def everything(client: Any) -> list[Any]:
        message = await client.messages.create(**request(model="m"))
        events = [e.model_dump() async for e in await client.messages.create(stream=True, **request(model="m"))]
        async with client.messages.stream(**request(model="m")) as stream:
            helper = [e.model_dump() async for e in stream], (await stream.get_final_message()).model_dump()
        return [message.model_dump(), events, helper]

    async def run() -> None:
        assert await everything(llmmetrics.instrument(claude_transport_client(True))) == await everything(
            claude_transport_client(True))
    asyncio.run(run())
    assert [r["output"] for r in traced.records()] == ["Hi there"] * 3


def test_messages_mutated_after_the_call_do_not_change_the_record(traced: Traced, claude: Any) -> None:
    """The prompt is snapshotted when the request goes out (for the helper: when its block is entered)."""
    messages = list(MESSAGES)
    with claude.messages.stream(model=CLAUDE, max_tokens=64, messages=messages) as stream:
        reply = stream.get_final_text()
    messages.append({"role": "assistant", "content": reply})
    assert traced.only_record()["messages"] == MESSAGES
