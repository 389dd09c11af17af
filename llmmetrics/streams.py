"""Stream tracing: the user keeps the very ``Stream`` object openai returned; only its iterator is wrapped.

The wrapper passes every chunk through, notes the first token, collects output and usage, withholds the
usage-only chunk when llmmetrics asked for it, and finishes the call exactly once: when the stream is
exhausted, fails, is closed (``close()``, leaving a ``with`` block) or is dropped after a ``break``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .instrumentation import Call

__all__ = ["wrap_sync_stream", "wrap_async_stream"]

log = logging.getLogger("llmmetrics")


def _observe_chat(call: Call, chunk: Any, withhold_usage: bool) -> bool:
    """Note what a chat chunk tells; True if the chunk must be withheld from the user.

    Runs once per chunk, and every attribute of an openai model costs a slow lookup (pydantic's
    ``__getattr__`` hook keeps Python from specialising it): a text delta is not also searched for tool
    calls, and usage is looked for on the chunks that can carry it (the last choice, or no choice).
    """
    choices = chunk.choices
    if choices:
        if call.first_token is None:
            call.first_token = time.perf_counter()
            call.response_model = chunk.model
        choice = choices[0]
        delta = choice.delta
        if delta is not None:
            text = delta.content
            if text:
                call.chunks.append(text)  # type: ignore[union-attr]
            elif delta.tool_calls:
                _merge_tool_calls(call, delta.tool_calls)
        reason = choice.finish_reason
        if reason is not None:
            call.finish_reason = reason
            usage = chunk.usage
            if usage is not None:
                call.usage = usage
        return False
    usage = chunk.usage
    if usage is not None:
        call.usage = usage
        call.response_model = call.response_model or chunk.model
        return withhold_usage
    return False


def _merge_tool_calls(call: Call, deltas: Any) -> None:
    calls = call.tool_calls if call.tool_calls is not None else []
    call.tool_calls = calls
    for delta in deltas:
        while len(calls) <= delta.index:
            calls.append({"id": None, "name": None, "arguments": ""})
        entry = calls[delta.index]
        if delta.id:
            entry["id"] = delta.id
        function = delta.function
        if function is not None:
            if function.name:
                entry["name"] = function.name
            if function.arguments:
                entry["arguments"] += function.arguments


def _observe_response_event(call: Call, event: Any, withhold_usage: bool) -> bool:
    """Note what a Responses API event tells; never withheld."""
    kind = event.type
    if kind == "response.output_text.delta":
        if call.first_token is None:
            call.first_token = time.perf_counter()
    elif kind in ("response.completed", "response.incomplete", "response.failed"):
        response = event.response
        call.read_responses_object(response)
        if kind == "response.failed":
            error = getattr(response, "error", None)
            call.stream_error = _ResponseFailed(getattr(error, "message", None) or "response failed")
    return False


class _ResponseFailed(Exception):
    """The Responses API reported ``response.failed`` inside a stream (the user sees the event, no raise)."""


def _finish(call: Call, exc: BaseException | None) -> None:
    try:
        if exc is None and call.stream_error is not None:
            exc = call.stream_error
        if exc is None:
            call.succeed()
        else:
            call.fail(exc)
    except Exception:
        call.rt.self_metrics.instrumentation_errors.labels("stream").inc()
        log.debug("llmmetrics: finishing a stream failed", exc_info=True)


def _observer(call: Call) -> Callable[[Call, Any, bool], bool]:
    if call.operation == "chat":
        call.chunks = []
        return _observe_chat
    return _observe_response_event


def _only_withhold(call: Call, item: Any, withhold_usage: bool) -> bool:
    """After a failure: observe nothing, but still hide the usage chunk the user did not ask for."""
    return withhold_usage and not getattr(item, "choices", True) and getattr(item, "usage", None) is not None


def _observation_failed(call: Call) -> None:
    """A chunk llmmetrics could not read: counted once, and the rest of the stream passes untouched."""
    call.rt.self_metrics.instrumentation_errors.labels("stream").inc()
    log.debug("llmmetrics: reading a stream chunk failed", exc_info=True)


def wrap_sync_stream(stream: Any, call: Call, withhold_usage: bool) -> None:
    observe = _observer(call)
    inner: Iterator[Any] = stream._iterator

    def traced() -> Iterator[Any]:
        nonlocal observe
        try:
            for item in inner:
                try:
                    hide = observe(call, item, withhold_usage)
                except Exception:
                    _observation_failed(call)
                    observe = _only_withhold
                    hide = _only_withhold(call, item, withhold_usage)
                if not hide:
                    yield item
        except GeneratorExit:  # closed or dropped early: a partial stream, not an error
            _finish(call, None)
            raise
        except BaseException as exc:
            _finish(call, exc)
            raise
        _finish(call, None)

    original_close = stream.close

    def close() -> None:
        try:
            original_close()
        finally:
            _finish(call, None)

    stream._iterator = traced()
    stream.close = close


def wrap_async_stream(stream: Any, call: Call, withhold_usage: bool) -> None:
    observe = _observer(call)
    inner: AsyncIterator[Any] = stream._iterator

    async def traced() -> AsyncIterator[Any]:
        nonlocal observe
        try:
            async for item in inner:
                try:
                    hide = observe(call, item, withhold_usage)
                except Exception:
                    _observation_failed(call)
                    observe = _only_withhold
                    hide = _only_withhold(call, item, withhold_usage)
                if not hide:
                    yield item
        except GeneratorExit:
            _finish(call, None)
            raise
        except BaseException as exc:
            _finish(call, exc)
            raise
        _finish(call, None)

    original_close = stream.close

    async def close() -> None:
        try:
            await original_close()
        finally:
            _finish(call, None)

    stream._iterator = traced()
    stream.close = close
