"""The ``openai`` SDK adapter (openai 1.66.0 and later, every major: see ``openai_compat``).

Traced: ``chat.completions.create``, ``responses.create`` and ``embeddings.create`` on ``OpenAI`` and
``AsyncOpenAI`` (and subclasses such as ``AzureOpenAI``), with ``stream=True`` and ``with_raw_response``.
For chat streams the API is asked for usage (``stream_options.include_usage``) when the user did not ask,
and the extra usage-only chunk is withheld, so user code sees exactly the chunks it would have seen.
The interface this module implements is described in :mod:`llmmetrics.providers`.

Streams are read where openai builds their items (``llmmetrics.streams.reading_client``): from the JSON the SDK has
just parsed, with plain dict lookups, before each item's pydantic model exists. Per chat chunk that is its
text piece (a chunk without text is kept whole, as parsed); the usage-only chunk llmmetrics asked for is
left out before openai builds it, which it never needs to; everything else (finish reason, model, tool
calls, usage) is read from what was kept on the exporter thread. Per Responses event it is the event type
(the final response is kept, as parsed). Where an openai release builds items some other way, the same is
read from the models as they pass (``_observe_*``) and the records are the same, only slower to make.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import openai

from ..call import PENDING, count_internal_error
from ..streams import WITHHELD, BuildItem, field, reading_client, wrap_async_stream, wrap_sync_stream, wrappable
from . import Target
from .hosts import provider_for_url
from .openai_compat import (PARSED_HOOK, RAW_RESPONSE_TYPES, REQUEST_ID_HEADER, UNSET, client_of, is_raw_request,
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

    The request is asked through ``extra_body``, merged into the JSON as it is, rather than through the
    ``stream_options`` argument, which openai would first run through its request transform (a few µs before
    the first token). A user's own ``stream_options`` is merged into instead. A raw stream's bytes are the
    user's to read, so its request is never altered.
    """
    if call.operation != "chat" or not _WRAPPABLE:
        return kwargs, None
    options = kwargs.get("stream_options")
    if isinstance(options, dict) and "include_usage" in options or is_raw_request(kwargs):
        return kwargs, None
    if isinstance(options, dict):
        return {**kwargs, "stream_options": {**options, "include_usage": True}}, _is_usage_chunk
    extra = kwargs.get("extra_body")
    if extra is None:
        return {**kwargs, "extra_body": {"stream_options": {"include_usage": True}}}, _is_usage_chunk
    if isinstance(extra, dict) and "stream_options" not in extra:
        return {**kwargs, "extra_body": {**extra, "stream_options": {"include_usage": True}}}, _is_usage_chunk
    return kwargs, None  # the user's own body decides


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
    hide_usage = added is not None
    if call.operation == "chat":
        call.chunks = []
        call.kept = []
        reader, observe, after_failure = _chat_reader, _observe_chat, _only_withhold
    else:
        reader, observe, after_failure, hide_usage = _responses_reader, _observe_response_event, _withhold_nothing, None
    client = reading_client(parsed, reader, call, hide_usage) if PARSED_HOOK else None
    if client is None:  # items built some other way: read from their models as they pass
        return wrap(parsed, call, observe, after_failure, hide_usage)
    if not wrap(parsed, call, None, None, None):
        return False
    parsed._client = client  # once the wrapper (which drops what the reader withholds) is in place
    return True


# Chat chunks. Per chunk only its text piece is taken (every attribute of an openai model costs a slow
# lookup, a dict lookup much less; nothing is built): every other chunk — the role chunk, tool call deltas,
# the one with the finish reason, usage — is kept whole, for the exporter to read (``_read_chat_stream``).
# A plain text chunk touches nothing but its own JSON and the list of pieces: the SDK's work between two
# chunks evicts anything else from the caches, and each object touched per chunk would cost a miss.
# Both readers keep the same.

def _chat_reader(build: BuildItem, call: Call, hide_usage: bool) -> BuildItem:
    """What builds each chunk of one chat stream: reads its parsed JSON, then has openai build it."""
    pieces, kept = call.chunks, call.kept
    unread = False

    def read_chunk(*, data: Any, cast_to: Any, response: Any) -> Any:
        nonlocal unread
        try:
            choices = data["choices"]
            if choices:
                if hide_usage and "usage" in data and data["usage"] is None:
                    del data["usage"]  # what asking for usage adds to every chunk: the user's chunk is as without it
                choice = choices[0]
                delta = choice["delta"]
                text = delta.get("content") if delta else None
                if text:
                    if not pieces and call.first_token is None:
                        call.first_token = PENDING  # stamped when this chunk reaches the user
                    pieces.append(text)  # type: ignore[union-attr]
                    if choice.get("finish_reason") is None:
                        return build(data=data, cast_to=cast_to, response=response)
                elif call.first_token is None:
                    call.first_token = PENDING
                kept.append(data)  # type: ignore[union-attr]
            elif data.get("usage") is not None:  # the usage-only chunk
                kept.append(data)  # type: ignore[union-attr]
                if hide_usage:
                    return WITHHELD  # never built: the wrapper drops it
        except Exception:  # not shaped like a chat chunk (or a bug here): passed on unread, counted once
            if not unread:
                unread = True
                count_internal_error(call.rt, "stream", "reading a stream item")
            if hide_usage and _is_usage_data(data):  # still never shown to the user
                return WITHHELD
        return build(data=data, cast_to=cast_to, response=response)

    return read_chunk


def _is_usage_data(data: Any) -> bool:
    """The parsed JSON of a usage-only chunk (no choices, a usage); False for anything else, never raises."""
    try:
        return type(data) is dict and not data.get("choices") and data.get("usage") is not None
    except Exception:
        return False


def _observe_chat(call: Call, chunk: Any, hide_usage: bool) -> bool:
    """``_chat_reader`` for an openai that builds its chunks some other way: the same, read from the models;
    True for the usage chunk llmmetrics asked for, which the user must not see."""
    choices = chunk.choices
    if choices:
        if call.first_token is None:
            call.first_token = time.perf_counter()
        choice = choices[0]
        delta = choice.delta
        text = delta.content if delta else None
        if text:
            call.chunks.append(text)  # type: ignore[union-attr]
            if choice.finish_reason is None:
                return False
        call.kept.append(chunk)  # type: ignore[union-attr]
        return False
    if chunk.usage is not None:
        call.kept.append(chunk)  # type: ignore[union-attr]
        return hide_usage
    return False


def _only_withhold(call: Call, chunk: Any, hide_usage: bool) -> bool:
    """After a failure: observe nothing, but still hide the usage chunk the user did not ask for."""
    return hide_usage and _is_usage_chunk(chunk)


# Responses events: per event only its type; the final response is kept for the exporter.

def _responses_reader(build: BuildItem, call: Call, note: Any) -> BuildItem:
    """What builds each event of one Responses stream: reads its type from the parsed JSON first."""
    unread = False

    def read_event(*, data: Any, cast_to: Any, response: Any) -> Any:
        nonlocal unread
        try:
            kind = data["type"]
            if kind == "response.output_text.delta":
                call.chunk_count += 1
                if call.first_token is None:
                    call.first_token = PENDING
            elif kind in _RESPONSE_ENDS:
                _response_ended(call, kind, data.get("response"))
        except Exception:  # not shaped like a Responses event (or a bug here): passed on unread, counted once
            if not unread:
                unread = True
                count_internal_error(call.rt, "stream", "reading a stream item")
        return build(data=data, cast_to=cast_to, response=response)

    return read_event


def _observe_response_event(call: Call, event: Any, note: Any) -> bool:
    """``_responses_reader`` for an openai that builds its events some other way; never withheld."""
    kind = event.type
    if kind == "response.output_text.delta":
        call.chunk_count += 1
        if call.first_token is None:
            call.first_token = time.perf_counter()
    elif kind in _RESPONSE_ENDS:
        _response_ended(call, kind, event.response)
    return False


def _response_ended(call: Call, kind: str, response: Any) -> None:
    call.response = response  # read by the exporter
    if kind == "response.failed":
        call.stream_error = ResponseFailed(field(field(response, "error"), "message") or "response failed")


def _withhold_nothing(call: Call, event: Any, note: Any) -> bool:
    return False


class ResponseFailed(Exception):
    """The Responses API reported ``response.failed`` inside a stream (the user sees the event, no raise)."""


# -- exporter thread ----------------------------------------------------------------------------------------------

def read_response(call: Call) -> None:
    """The request id of a stream (from its HTTP headers) and what a stream kept; model, usage, output, finish
    reason, tool calls and request id of a response."""
    http_response = call.http_response
    if http_response is not None and call.provider_request_id is None:
        call.provider_request_id = http_response.headers.get(REQUEST_ID_HEADER)
    if call.kept is not None:
        _read_chat_stream(call)
        return
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


def _read_chat_stream(call: Call) -> None:
    """Finish reason, model, usage and tool calls of a chat stream, from the chunks it kept whole (parsed JSON
    or models): the finish reason and usage of the last chunk that has one, the model of the first, the tool
    call deltas of the chunks without text merged in order (as a user reads a chunk: its text if it has any)."""
    call.chunk_count = len(call.chunks or ())
    model = reason = usage = None
    calls: list[dict[str, Any]] = []
    for item in call.kept or ():
        model = model or field(item, "model")
        usage = field(item, "usage") or usage
        choices = field(item, "choices")
        if choices:
            choice = choices[0]
            reason = field(choice, "finish_reason") or reason
            delta = field(choice, "delta")
            deltas = field(delta, "tool_calls")
            if deltas and not field(delta, "content"):
                _merge_tool_calls(calls, deltas)
    call.response_model, call.finish_reason, call.usage = model, reason, usage
    if calls:
        call.tool_calls = calls


def _merge_tool_calls(calls: list[dict[str, Any]], deltas: Any) -> None:
    for delta in deltas:
        index = field(delta, "index")
        while len(calls) <= index:
            calls.append({"id": None, "name": None, "arguments": ""})
        entry = calls[index]
        tool_id = field(delta, "id")
        if tool_id:
            entry["id"] = tool_id
        function = field(delta, "function")
        name, arguments = field(function, "name"), field(function, "arguments")
        if name:
            entry["name"] = name
        if arguments:
            entry["arguments"] += arguments


def _read_responses_object(call: Call, response: Any) -> None:
    """A Responses API answer, as a model (a plain call) or as the JSON a stream's last event carried."""
    call.response_model = field(response, "model") or call.response_model
    call.usage = field(response, "usage")
    call.output = _output_text(response)
    call.finish_reason = field(field(response, "incomplete_details"), "reason") or field(response, "status")
    calls = [i for i in field(response, "output") or () if field(i, "type") == "function_call"]
    if calls:
        call.tool_calls = [{"id": field(c, "call_id"), "name": field(c, "name"), "arguments": field(c, "arguments")}
                           for c in calls]


def _output_text(response: Any) -> str:
    """What ``Response.output_text`` gives, from either shape: the text parts of its messages, joined."""
    texts = (field(part, "text") for item in field(response, "output") or () if field(item, "type") == "message"
             for part in field(item, "content") or () if field(part, "type") == "output_text")
    return "".join(text for text in texts if text is not None)


def _chat_tool_call(tool_call: Any) -> dict[str, Any]:
    function = getattr(tool_call, "function", None)
    return {"id": tool_call.id, "name": getattr(function, "name", None), "arguments": getattr(function, "arguments", None)}


def read_usage(operation: str, usage: Any) -> tuple[int | None, ...]:
    """(input, output, cached input, reasoning, cache writes, 1-hour cache writes) from either usage shape (a
    model, or a stream's parsed JSON); absent parts are None. OpenAI bills no cache writes apart, so those are
    always None."""
    if operation == "responses":
        return (field(usage, "input_tokens"), field(usage, "output_tokens"),
                field(field(usage, "input_tokens_details"), "cached_tokens"),
                field(field(usage, "output_tokens_details"), "reasoning_tokens"), None, None)
    input_tokens = field(usage, "prompt_tokens")
    if operation == "embeddings":
        return input_tokens, None, None, None, None, None
    return (input_tokens, field(usage, "completion_tokens"),
            field(field(usage, "prompt_tokens_details"), "cached_tokens"),
            field(field(usage, "completion_tokens_details"), "reasoning_tokens"), None, None)
