"""Fault injection on the anthropic adapter's call path (tests/core/test_faults.py for Claude): whichever
internal step raises — building the runtime, looking up the series, handing the call to the exporter,
preparing a stream, reading what the SDK returned, handing over the stream helper's request, observing a
stream, reading the response — the user's call returns or raises exactly what the bare client does, and the
failure is counted in ``llmmetrics_instrumentation_errors_total``.

Both clients get the same fixed wire answers (``tests/support/anthropic_wire.py``), so "exactly" is an
equality of everything the user can see: dumped messages, event sequences, final messages, raw headers,
exceptions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest

import llmmetrics.providers.anthropic as adapter

from tests.support.anthropic_wire import claude_transport_client
from tests.support.claude import request
from tests.support.faults import (SHARED_FAULTS, Fault, bug, check_under_fault, check_without_faults,
                                  raised, unkeeping)
from tests.support.llm import Traced


class Scenario(NamedTuple):
    run: Callable[[Any], Any]  # client -> what the user sees (a coroutine for async scenarios)
    is_async: bool = False
    via: str = "create"  # "create", "stream" (create(stream=True)) or "helper" (messages.stream())
    fails: bool = False


def _dumped(message: Any) -> Any:
    return message.model_dump(), message.__dict__.get("_request_id")


def _create(model: str = "m", **kw: Any) -> Callable[[Any], Any]:
    return lambda c: _dumped(c.messages.create(**request(model=model, **kw)))


def _stream(model: str = "m") -> Callable[[Any], Any]:
    return lambda c: [e.model_dump() for e in c.messages.create(stream=True, **request(model=model))]


def _helper(model: str = "m") -> Callable[[Any], Any]:
    def run(c: Any) -> Any:
        with c.messages.stream(**request(model=model)) as stream:
            return [e.model_dump() for e in stream], stream.get_final_message().model_dump()
    return run


def _raw(stream: bool) -> Callable[[Any], Any]:
    def run(c: Any) -> Any:
        raw = c.messages.with_raw_response.create(stream=stream, **request(model="m"))
        parsed = raw.parse()
        return dict(raw.headers), [e.model_dump() for e in parsed] if stream else parsed.model_dump()
    return run


def _async_create(model: str = "m") -> Callable[[Any], Any]:
    async def run(c: Any) -> Any:
        return _dumped(await c.messages.create(**request(model=model)))
    return run


def _async_stream(c: Any) -> Any:
    async def run() -> Any:
        return [e.model_dump() async for e in await c.messages.create(stream=True, **request(model="m"))]
    return run()


def _async_helper(c: Any) -> Any:
    async def run() -> Any:
        async with c.messages.stream(**request(model="m")) as stream:
            return [e.model_dump() async for e in stream], (await stream.get_final_message()).model_dump()
    return run()


def _async_raw(stream: bool) -> Callable[[Any], Any]:
    async def run(c: Any) -> Any:
        raw = await c.messages.with_raw_response.create(stream=stream, **request(model="m"))
        parsed = await raw.parse()
        return dict(raw.headers), [e.model_dump() async for e in parsed] if stream else parsed.model_dump()
    return run


SCENARIOS = {
    "create": Scenario(_create()),
    "stream": Scenario(_stream(), via="stream"),
    "helper": Scenario(_helper(), via="helper"),
    "error": Scenario(_create("broken"), fails=True),
    "error-stream": Scenario(_stream("broken"), via="stream", fails=True),
    "error-helper": Scenario(_helper("broken"), via="helper", fails=True),
    "raw": Scenario(_raw(False)),
    "raw-stream": Scenario(_raw(True), via="stream"),
    "async-create": Scenario(_async_create(), is_async=True),
    "async-stream": Scenario(_async_stream, is_async=True, via="stream"),
    "async-helper": Scenario(_async_helper, is_async=True, via="helper"),
    "async-error": Scenario(_async_create("broken"), is_async=True, fails=True),
    "async-raw": Scenario(_async_raw(False), is_async=True),
    "async-raw-stream": Scenario(_async_raw(True), is_async=True, via="stream"),
}


FAULTS = {
    **SHARED_FAULTS,
    "stream-request": Fault("call", lambda m, t: m.setattr(adapter, "prepare_stream", bug),
                            lambda s: s.via == "stream"),
    "returned-value": Fault("call", lambda m, t: m.setattr(adapter, "returned", bug), lambda s: not s.fails),
    "helper-handover": Fault("call", lambda m, t: m.setattr(adapter, "defer", bug), lambda s: s.via == "helper"),
    # reading each event's parsed JSON fails (keeping its text)
    "stream-reader": Fault("stream", lambda m, t: m.setattr(adapter, "_event_reader", unkeeping(adapter._event_reader, "chunks")),
                           lambda s: s.via != "create" and not s.fails),
    # where events are read from their models: the observer raises
    "stream-observer": Fault("stream", lambda m, t: (m.setattr(adapter, "PARSED_HOOK", False),
                                                     m.setattr(adapter, "_observe_event", bug)),
                             lambda s: s.via != "create" and not s.fails),
    "response-reading": Fault("record", lambda m, t: m.setattr(adapter, "read_response", bug), lambda s: not s.fails),
}


def _outcome(scenario: Scenario, client: Any) -> Any:
    """("returned", what the user sees) or ("raised", the exception as the user sees it: the 529 of model
    ``broken`` is OverloadedError)."""
    try:
        return "returned", asyncio.run(scenario.run(client)) if scenario.is_async else scenario.run(client)
    except Exception as exc:
        return "raised", raised(exc)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("fault", list(FAULTS))
def test_internal_failure_leaves_the_users_call_as_the_bare_clients(traced: Traced, monkeypatch: pytest.MonkeyPatch,
                                                                     fault: str, scenario: str) -> None:
    """With one internal step raising, the call returns/raises what the bare client does; the failure is counted."""
    case = SCENARIOS[scenario]
    check_under_fault(traced, monkeypatch, FAULTS[fault], case, _outcome, claude_transport_client,
                      SCENARIOS["async-create" if case.is_async else "create"])


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_without_faults_the_same_calls_are_traced(traced: Traced, scenario: str) -> None:
    """The scenarios above, fault-free: identical to the bare client, one record each, nothing counted."""
    case = SCENARIOS[scenario]
    record = check_without_faults(traced, case, _outcome, claude_transport_client)
    assert record["stream"] is (case.via != "create")
    if not case.fails:
        assert record["input_tokens"] == 9 and record["output_tokens"] == 4 and record["output"] == "Hi there"
