"""The ``openai`` SDK adapter (openai 1.66.0 and later, every major: see ``openai_compat``).

Traced: ``chat.completions.create``, ``responses.create`` and ``embeddings.create`` on ``OpenAI`` and
``AsyncOpenAI`` (and subclasses such as ``AzureOpenAI``), with ``stream=True`` and ``with_raw_response``.
For chat streams the API is asked for usage (``stream_options.include_usage``) when the user did not ask,
and the extra usage-only chunk is withheld, so user code sees exactly the chunks it would have seen.
The interface this module implements is described in :mod:`llmmetrics.providers`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import openai

from ..streams import wrap_async_stream, wrap_sync_stream, wrappable
from . import Target
from .hosts import provider_for_url
from .openai_compat import (RAW_RESPONSE_TYPES, REQUEST_ID_HEADER, UNSET, client_of, detail, is_raw_request,
                            is_raw_response, request_id_of)

if TYPE_CHECKING:
    from ..call import Call

__all__ = ["NAME", "TARGETS", "CHAT", "CLIENT_COPIES", "RESOURCE_CACHES", "UNSET", "owns", "is_async", "client_of",
           "provider_label", "prepare_stream", "returned", "read_response", "read_usage"]

NAME = "openai"
CHAT = Target("chat", "openai.resources.chat.completions.completions", "Completions", "AsyncCompletions",
              ("chat", "completions"), "messages")
TARGETS = (
    CHAT,
    Target("responses", "openai.resources.responses.responses", "Responses", "AsyncResponses", ("responses",), "input"),
    Target("embeddings", "openai.resources.embeddings", "Embeddings", "AsyncEmbeddings", ("embeddings",), "input"),
)
CLIENT_COPIES = ("copy", "with_options")
RESOURCE_CACHES = ("with_raw_response", "with_streaming_response")

# Only a stream llmmetrics can wrap may be asked for more than the user asked for: the wrapper hides it.
_WRAPPABLE = wrappable(openai.Stream) and wrappable(openai.AsyncStream)
_RESPONSE_ENDS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def owns(client: Any) -> bool:
    return isinstance(client, (openai.OpenAI, openai.AsyncOpenAI))


def is_async(client: Any) -> bool:
    return isinstance(client, openai.AsyncOpenAI)


def provider_label(client: Any) -> str:
    """Azure clients by class (any endpoint), the others by base URL (:func:`~.hosts.provider_for_url`)."""
    if any(cls.__name__.startswith(("Azure", "AsyncAzure")) for cls in type(client).__mro__):
        return "azure_openai"
    return provider_for_url(getattr(client, "base_url", ""))


# -- call path ----------------------------------------------------------------------------------------------------

def prepare_stream(call: Call, kwargs: dict[str, Any]) -> tuple[dict[str, Any], Callable[[Any], bool] | None]:
    """Ask a chat stream for usage if the user did not: the kwargs to send, and (then) what recognises the
    usage-only chunk the user must not see.

    A raw stream's bytes are the user's to read, so its request is never altered.
    """
    if call.operation != "chat" or not _WRAPPABLE:
        return kwargs, None
    options = kwargs.get("stream_options")
    if isinstance(options, dict) and "include_usage" in options or is_raw_request(kwargs):
        return kwargs, None
    merged = {**options, "include_usage": True} if isinstance(options, dict) else {"include_usage": True}
    return {**kwargs, "stream_options": merged}, _is_usage_chunk


def _is_usage_chunk(chunk: Any) -> bool:
    return not getattr(chunk, "choices", True) and getattr(chunk, "usage", None) is not None


def returned(call: Call, result: Any, added: Callable[[Any], bool] | None, is_async: bool) -> bool:
    """Note what ``create`` returned; True if the call finishes later (a stream) or has finished already."""
    # with_raw_response (sync and async); the isinstance inline, as the plain call's only cost here
    if isinstance(result, RAW_RESPONSE_TYPES) or (not RAW_RESPONSE_TYPES and is_raw_response(result)):
        call.provider_request_id = result.headers.get(REQUEST_ID_HEADER)
        try:
            parsed = result.parse()  # cached by openai: the user's own parse() returns this same object
        except Exception as exc:  # e.g. an invalid body: the user meets this error when they parse
            call.fail(exc)
            return True
    else:
        parsed = result
    if not call.stream:
        call.response = parsed  # read by the exporter
        return False
    call.http_response = getattr(parsed, "response", None)  # its request id is read by the exporter
    wrap = wrap_async_stream if is_async else wrap_sync_stream
    if call.operation == "chat":
        call.chunks = []
        return wrap(parsed, call, _observe_chat, _only_withhold, added is not None)
    return wrap(parsed, call, _observe_response_event, _withhold_nothing, None)


def _observe_chat(call: Call, chunk: Any, hide_usage: bool) -> bool:
    """Note what a chat chunk tells: first token, text, tool calls, finish reason, usage; True if the chunk
    is the usage llmmetrics asked for, which the user must not see.

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
        return hide_usage
    return False


def _only_withhold(call: Call, chunk: Any, hide_usage: bool) -> bool:
    """After a failure: observe nothing, but still hide the usage chunk the user did not ask for."""
    return hide_usage and _is_usage_chunk(chunk)


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


def _observe_response_event(call: Call, event: Any, note: Any) -> bool:
    """Note what a Responses API event tells: the first text delta, and the final response (read by the
    exporter); never withheld."""
    kind = event.type
    if kind == "response.output_text.delta":
        call.chunk_count += 1
        if call.first_token is None:
            call.first_token = time.perf_counter()
    elif kind in _RESPONSE_ENDS:
        response = call.response = event.response
        if kind == "response.failed":
            error = getattr(response, "error", None)
            call.stream_error = ResponseFailed(getattr(error, "message", None) or "response failed")
    return False


def _withhold_nothing(call: Call, event: Any, note: Any) -> bool:
    return False


class ResponseFailed(Exception):
    """The Responses API reported ``response.failed`` inside a stream (the user sees the event, no raise)."""


# -- exporter thread ----------------------------------------------------------------------------------------------

def read_response(call: Call) -> None:
    """The request id of a stream (from its HTTP headers) and a chat stream's chunk count; model, usage, output,
    finish reason, tool calls and request id of a response."""
    if call.chunks:  # a chat stream's chunks that carried text, counted here rather than once per chunk
        call.chunk_count = len(call.chunks)
    http_response = call.http_response
    if http_response is not None and call.provider_request_id is None:
        call.provider_request_id = http_response.headers.get(REQUEST_ID_HEADER)
    response = call.response
    if response is None:
        return
    if call.provider_request_id is None:
        call.provider_request_id = request_id_of(response)
    operation = call.operation
    if operation == "responses":
        _read_responses_object(call, response)
        return
    call.response_model = getattr(response, "model", None)
    call.usage = getattr(response, "usage", None)
    if operation == "chat":
        choices = getattr(response, "choices", None)
        if choices:
            first = choices[0]
            message = first.message
            call.output = message.content
            call.finish_reason = first.finish_reason
            if message.tool_calls:
                call.tool_calls = [_chat_tool_call(t) for t in message.tool_calls]


def _read_responses_object(call: Call, response: Any) -> None:
    call.response_model = getattr(response, "model", None) or call.response_model
    call.usage = getattr(response, "usage", None)
    call.output = getattr(response, "output_text", None)
    details = getattr(response, "incomplete_details", None)
    call.finish_reason = getattr(details, "reason", None) or getattr(response, "status", None)
    calls = [i for i in getattr(response, "output", None) or () if getattr(i, "type", None) == "function_call"]
    if calls:
        call.tool_calls = [{"id": c.call_id, "name": c.name, "arguments": c.arguments} for c in calls]


def _chat_tool_call(tool_call: Any) -> dict[str, Any]:
    function = getattr(tool_call, "function", None)
    return {"id": tool_call.id, "name": getattr(function, "name", None), "arguments": getattr(function, "arguments", None)}


def read_usage(operation: str, usage: Any) -> tuple[int | None, ...]:
    """(input, output, cached input, reasoning, cache writes, 1-hour cache writes) from either usage shape;
    absent parts are None. OpenAI bills no cache writes apart, so those are always None."""
    if operation == "responses":
        return (usage.input_tokens, usage.output_tokens,
                detail(getattr(usage, "input_tokens_details", None), "cached_tokens"),
                detail(getattr(usage, "output_tokens_details", None), "reasoning_tokens"), None, None)
    input_tokens = usage.prompt_tokens
    if operation == "embeddings":
        return input_tokens, None, None, None, None, None
    return (input_tokens, usage.completion_tokens,
            detail(getattr(usage, "prompt_tokens_details", None), "cached_tokens"),
            detail(getattr(usage, "completion_tokens_details", None), "reasoning_tokens"), None, None)
