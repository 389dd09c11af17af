"""Fault injection on the call path: whichever internal step of llmmetrics raises — building the runtime,
looking up the series, handing the call to the exporter, preparing a stream, reading what the SDK returned,
observing a stream, reading the response — the user's call returns or raises exactly what the bare client
does, and the failure is counted in ``llmmetrics_instrumentation_errors_total``.

Both clients get the same fixed wire answers (``tests/support/wire.py``), so "exactly" is an equality of
everything the user can see: types, dumped models, chunk sequences, raw headers, exceptions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, NamedTuple

import openai
import pytest

import llmmetrics.providers.openai as adapter

from tests.support.faults import (SHARED_FAULTS, Fault, bug, check_under_fault, check_without_faults,
                                  raised, unkeeping)
from tests.support.llm import Traced
from tests.support.wire import transport_client

MESSAGES = [{"role": "user", "content": "Where is order #1234?"}]


class Scenario(NamedTuple):
    run: Callable[[Any], Any]  # client -> result (awaitable for async scenarios)
    is_async: bool = False
    stream: bool = False
    fails: bool = False


def _chat(**kw: Any) -> Callable[[Any], Any]:
    return lambda c: c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, **kw)


def _raw_chat(**kw: Any) -> Callable[[Any], Any]:
    return lambda c: c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES, **kw)


SCENARIOS = {
    "chat": Scenario(_chat()),
    "chat-stream": Scenario(_chat(stream=True), stream=True),
    "chat-stream-usage": Scenario(_chat(stream=True, stream_options={"include_usage": True}), stream=True),
    "responses": Scenario(lambda c: c.responses.create(model="gpt-4.1", input="hi")),
    "responses-stream": Scenario(lambda c: c.responses.create(model="gpt-4.1", input="hi", stream=True), stream=True),
    "embeddings": Scenario(lambda c: c.embeddings.create(model="text-embedding-3-small", input="x")),
    "error": Scenario(lambda c: c.chat.completions.create(model="broken", messages=MESSAGES), fails=True),
    "error-stream": Scenario(lambda c: c.chat.completions.create(model="broken", messages=MESSAGES, stream=True),
                             stream=True, fails=True),
    "raw": Scenario(_raw_chat()),
    "raw-stream": Scenario(_raw_chat(stream=True), stream=True),
    "async-chat": Scenario(_chat(), is_async=True),
    "async-chat-stream": Scenario(_chat(stream=True), is_async=True, stream=True),
    "async-responses-stream": Scenario(lambda c: c.responses.create(model="gpt-4.1", input="hi", stream=True),
                                       is_async=True, stream=True),
    "async-error": Scenario(lambda c: c.chat.completions.create(model="broken", messages=MESSAGES), is_async=True,
                            fails=True),
    "async-raw": Scenario(_raw_chat(), is_async=True),
}


FAULTS = {
    **SHARED_FAULTS,
    "stream-request": Fault("call", lambda m, t: m.setattr(adapter, "prepare_stream", bug), lambda s: s.stream),
    "returned-value": Fault("call", lambda m, t: m.setattr(adapter, "returned", bug), lambda s: not s.fails),
    # reading the parsed JSON of each chunk fails (keeping what it read, and reading a Responses stream's end)
    "stream-reader": Fault("stream", lambda m, t: (m.setattr(adapter, "_chat_reader", unkeeping(adapter._chat_reader, "chunks", "kept")),
                                                   m.setattr(adapter, "_response_ended", bug)),
                           lambda s: s.stream and not s.fails),
    # where chunks are read from their models: the observers raise; their fallbacks (after_failure) are the
    # adapter's own
    "stream-observer": Fault("stream", lambda m, t: (m.setattr(adapter, "PARSED_HOOK", False),
                                                     m.setattr(adapter, "_observe_chat", bug),
                                                     m.setattr(adapter, "_observe_response_event", bug)),
                             lambda s: s.stream and not s.fails),
    "response-reading": Fault("record", lambda m, t: m.setattr(adapter, "read_response", bug), lambda s: not s.fails),
}


def _seen(result: Any) -> Any:
    """Everything the user can see of a result (streams consumed)."""
    if isinstance(result, (openai.Stream, openai.AsyncStream)):
        raise AssertionError("consume streams before describing them")
    if callable(getattr(result, "parse", None)) and hasattr(result, "http_response"):  # with_raw_response
        parsed = result.parse()
        body = [c.model_dump() for c in parsed] if isinstance(parsed, openai.Stream) else parsed.model_dump()
        return type(result), result.status_code, dict(result.headers), type(parsed), body
    return type(result), result.model_dump(), getattr(result, "_request_id", None)


def _outcome(scenario: Scenario, client: Any) -> Any:
    """("returned", what the user sees) or ("raised", the exception as the user sees it)."""
    async def run_async() -> Any:
        result = await scenario.run(client)
        if isinstance(result, openai.AsyncStream):
            return type(result), [c.model_dump() async for c in result]
        if callable(getattr(result, "parse", None)) and isinstance(result.parse(), openai.AsyncStream):
            raise AssertionError("async raw streams are not among these scenarios")
        return _seen(result)

    def run_sync() -> Any:
        result = scenario.run(client)
        if isinstance(result, openai.Stream):
            return type(result), [c.model_dump() for c in result]
        return _seen(result)

    try:
        return "returned", (asyncio.run(run_async()) if scenario.is_async else run_sync())
    except Exception as exc:
        return "raised", raised(exc)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("fault", list(FAULTS))
def test_internal_failure_leaves_the_users_call_as_the_bare_clients(traced: Traced, monkeypatch: pytest.MonkeyPatch,
                                                                     fault: str, scenario: str) -> None:
    """With one internal step raising, the call returns/raises what the bare client does; the failure is counted."""
    case = SCENARIOS[scenario]
    check_under_fault(traced, monkeypatch, FAULTS[fault], case, _outcome, transport_client,
                      SCENARIOS["async-chat" if case.is_async else "chat"])


@pytest.mark.parametrize("scenario", ["chat", "chat-stream", "async-chat-stream", "error"])
def test_without_faults_the_same_calls_are_traced(traced: Traced, scenario: str) -> None:
    """The scenarios above, fault-free: identical to the bare client, one record each, nothing counted."""
    check_without_faults(traced, SCENARIOS[scenario], _outcome, transport_client)
