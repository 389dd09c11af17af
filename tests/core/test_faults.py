"""Fault injection on the call path: whichever internal step of llmmetrics raises — building the runtime,
looking up the series, handing the call to the exporter, preparing a stream, reading what the SDK returned,
observing a stream, reading the response — the user's call returns or raises exactly what the bare client
does, and the failure is counted in ``llmmetrics_instrumentation_errors_total``.

Both clients get the same fixed wire answers (``tests/support/wire.py``), so "exactly" is an equality of
everything the user can see: types, dumped models, chunk sequences, raw headers, exceptions.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from typing import Any, NamedTuple

import openai
import pytest

import llmmetrics
import llmmetrics.providers.openai as adapter

from tests.support.llm import Traced
from tests.support.wire import transport_client

runtime_module = importlib.import_module("llmmetrics.runtime")  # the attribute llmmetrics.runtime is the function
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


def _bug(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("bug in llmmetrics")


class Fault(NamedTuple):
    stage: str  # the instrumentation_errors stage it is counted under
    inject: Callable[[pytest.MonkeyPatch, Traced], None]
    hits: Callable[[Scenario], bool]  # whether the scenario reaches the faulty step


FAULTS = {
    "runtime-build": Fault("runtime", lambda m, t: (m.setattr(runtime_module, "_runtime", None),
                                                    m.setattr(runtime_module, "Runtime", _bug)), lambda s: True),
    "series-lookup": Fault("call", lambda m, t: m.setattr(t.runtime.metrics, "series_for", _bug), lambda s: True),
    "exporter-submit": Fault("call", lambda m, t: m.setattr(t.runtime, "submit", _bug), lambda s: True),
    "stream-request": Fault("call", lambda m, t: m.setattr(adapter, "prepare_stream", _bug), lambda s: s.stream),
    "returned-value": Fault("call", lambda m, t: m.setattr(adapter, "returned", _bug), lambda s: not s.fails),
    # the observers raise; their fallbacks (after_failure) are the adapter's own
    "stream-observer": Fault("stream", lambda m, t: (m.setattr(adapter, "_observe_chat", _bug),
                                                     m.setattr(adapter, "_observe_response_event", _bug)),
                             lambda s: s.stream and not s.fails),
    "response-reading": Fault("record", lambda m, t: m.setattr(adapter, "read_response", _bug), lambda s: not s.fails),
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
        return "raised", (type(exc), str(exc), getattr(exc, "status_code", None), getattr(exc, "body", None))


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("fault", list(FAULTS))
def test_internal_failure_leaves_the_users_call_as_the_bare_clients(traced: Traced, monkeypatch: pytest.MonkeyPatch,
                                                                     fault: str, scenario: str) -> None:
    """With one internal step raising, the call returns/raises what the bare client does; the failure is counted."""
    spec, case = FAULTS[fault], SCENARIOS[scenario]
    bare = transport_client(case.is_async)
    ours = llmmetrics.instrument(transport_client(case.is_async))
    expected = _outcome(case, bare)
    with monkeypatch.context() as m:
        spec.inject(m, traced)
        assert _outcome(case, ours) == expected
        assert traced.runtime.flush(10)  # the exporter's part runs under the fault too
    assert expected[0] == ("raised" if case.fails else "returned")
    if spec.stage == "runtime":  # counted by the next runtime the call path can get
        _outcome(SCENARIOS["async-chat" if case.is_async else "chat"], ours)
    counted = traced.value("llmmetrics_instrumentation_errors_total", stage=spec.stage) or 0
    assert counted == (1 if spec.hits(case) else 0)


@pytest.mark.parametrize("scenario", ["chat", "chat-stream", "async-chat-stream", "error"])
def test_without_faults_the_same_calls_are_traced(traced: Traced, scenario: str) -> None:
    """The scenarios above, fault-free: identical to the bare client, one record each, nothing counted."""
    case = SCENARIOS[scenario]
    assert _outcome(case, llmmetrics.instrument(transport_client(case.is_async))) == _outcome(
        case, transport_client(case.is_async))
    record = traced.only_record()
    assert record["status"] == ("error" if case.fails else "success")
    for stage in ("runtime", "call", "stream", "record"):
        assert not traced.value("llmmetrics_instrumentation_errors_total", stage=stage)
