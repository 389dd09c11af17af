"""The ``anthropic`` SDK adapter (anthropic 2.x): Claude's Messages API, first-party, on Bedrock and on Vertex.

Traced: ``messages.create`` (plain, ``stream=True``, ``with_raw_response``) and the ``messages.stream()``
helper (``text_stream``, ``get_final_message()``, early exit, ``with`` blocks) on ``Anthropic`` and
``AsyncAnthropic`` (and their subclasses), ``AnthropicBedrock``, ``AnthropicVertex`` and their async forms;
the ``provider`` label is ``bedrock``, ``vertex`` or, for the others, ``anthropic`` (or the gateway their base
URL names). The ``operation`` label is ``chat``, as OpenTelemetry's GenAI conventions name the Messages API.

What a Claude call records: every input token — ``input_tokens`` + ``cache_read_input_tokens`` +
``cache_creation_input_tokens`` — as input, cache reads as cached input, cache creation as cache writes (the
1-hour share apart, for its price), thinking tokens as reasoning (part of output); ``stop_reason`` as the
finish reason, ``tool_use`` blocks as ``tool_calls`` ``{id, name, arguments}`` (arguments as JSON text), the
text blocks as the output. A stream's usage comes from its own events — ``message_start`` (input side) and
``message_delta`` (cumulative counts) — so no extra request is made and nothing is withheld from the user;
a stream closed before ``message_delta`` has no usage (unpriced), as an openai stream without its usage
chunk. Time to first token is the first ``content_block_delta``; every ``content_block_delta`` is a chunk.

``messages.stream()`` returns a ``MessageStreamManager`` that sends its request when its ``with`` block is
entered: the adapter is a deferred target (see :mod:`llmmetrics.providers`), so the call starts then and the
manager, the ``MessageStream`` and every event are the SDK's own. The helper's accumulator runs above the
traced raw stream: if it fails (it raises ``AttributeError`` at a ``message_delta`` without usage), the
user sees its exception unchanged while the call is recorded as the wire gave it.

Not traced: ``client.beta.messages``, ``messages.parse()``, ``messages.count_tokens()``, batches.

Private names of the SDK relied on (``tests/providers/test_anthropic_compat.py`` pins each; if one moves the
user's calls go on untouched and the failure is counted in ``llmmetrics_instrumentation_errors_total``):
a stream's ``_iterator`` (a cached property of ``Stream``/``AsyncStream``, set on the instance), a stream's
``_client._process_response_data`` (what builds each event from its parsed JSON: the adapter's reader reads
it there first, :func:`llmmetrics.streams.reading_client`; else the built events are observed), a
resource's ``_client``, the manager's pending request (``_MessageStreamManager__api_request``), and, for an
async ``with_raw_response``, ``AsyncAPIResponse._parse()`` and its ``_parsed_by_type`` cache (its public
``parse()`` is a coroutine the adapter cannot await).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anthropic
import orjson
from anthropic.lib.streaming import AsyncMessageStreamManager

from ..call import PENDING, count_internal_error, error_of
from ..streams import BuildItem, builds_items_through_client, field, reading_client, wrap_async_stream, wrap_sync_stream
from . import Target
from .hosts import provider_for_url

if TYPE_CHECKING:
    from ..call import Call

__all__ = ["NAME", "TARGETS", "CHAT", "CLIENT_COPIES", "RESOURCE_CACHES", "UNSET", "owns", "is_async", "client_of",
           "provider_label", "prepare_stream", "returned", "defer", "read_response", "read_usage"]

NAME = "anthropic"
_MESSAGES = "anthropic.resources.messages.messages"
CHAT = Target("chat", _MESSAGES, "Messages", "AsyncMessages", ("messages",), "messages")
STREAM_HELPER = Target("chat", _MESSAGES, "Messages", "AsyncMessages", ("messages",), "messages", "stream",
                       deferred=True)
TARGETS = (CHAT, STREAM_HELPER)
CLIENT_COPIES = ("copy", "with_options")
RESOURCE_CACHES = ("with_raw_response", "with_streaming_response")
UNSET: tuple[type, ...] = (anthropic.NotGiven, anthropic.Omit)

_SYNC_CLIENTS = (anthropic.Anthropic, anthropic.AnthropicBedrock, anthropic.AnthropicVertex)
_ASYNC_CLIENTS = (anthropic.AsyncAnthropic, anthropic.AsyncAnthropicBedrock, anthropic.AsyncAnthropicVertex)
_RAW_RESPONSES = (anthropic.APIResponse, anthropic.AsyncAPIResponse)
#: Where each stream manager keeps its request until ``__enter__``/``__aenter__`` sends it.
_PENDING_REQUEST = ("_MessageStreamManager__api_request", "_AsyncMessageStreamManager__api_request")
_REQUEST_ID_HEADERS = ("request-id", "x-amzn-requestid")  # first-party; Bedrock
_NO_DICT: dict[str, Any] = {}
#: True if this anthropic's streams can be given their own item builder (:func:`llmmetrics.streams.reading_client`).
PARSED_HOOK: bool = builds_items_through_client(anthropic.Stream) and builds_items_through_client(anthropic.AsyncStream)


def owns(client: Any) -> bool:
    return isinstance(client, _SYNC_CLIENTS + _ASYNC_CLIENTS)


def is_async(client: Any) -> bool:
    return isinstance(client, _ASYNC_CLIENTS)


def client_of(resource: Any) -> Any:
    """The client a resource (``client.messages``) belongs to; the resource itself if that moved."""
    return getattr(resource, "_client", resource)


def provider_label(client: Any) -> str:
    """``bedrock`` and ``vertex`` by class; otherwise ``anthropic``, unless the base URL names another host
    :func:`~.hosts.provider_for_url` knows (an Anthropic-compatible gateway, Ollama, ...)."""
    names = {cls.__name__ for cls in type(client).__mro__}
    if names & {"AnthropicBedrock", "AsyncAnthropicBedrock"}:
        return "bedrock"
    if names & {"AnthropicVertex", "AsyncAnthropicVertex"}:
        return "vertex"
    label = provider_for_url(getattr(client, "base_url", ""))
    return "anthropic" if label in ("openai", "openai_compatible") else label


# -- call path ----------------------------------------------------------------------------------------------------

def prepare_stream(call: Call, kwargs: dict[str, Any]) -> tuple[dict[str, Any], Callable[[Any], bool] | None]:
    """Nothing to ask for: Anthropic's streams carry their usage."""
    return kwargs, None


def returned(call: Call, result: Any, added: Callable[[Any], bool] | None, is_async: bool) -> bool:
    """Note what ``create`` (or a stream helper's request) returned; True if the call finishes later."""
    if isinstance(result, _RAW_RESPONSES):
        call.provider_request_id = _request_id(result.headers)
        if not call.stream:
            if is_async:  # its parse() is a coroutine: the exporter parses the body (already read) itself
                call.response = result
                return False
            try:
                result = result.parse()  # cached: the user's own parse() returns this same object
            except Exception as exc:  # e.g. an invalid body: the user meets this error when they parse
                call.fail(exc)
                return True
        else:
            result = _parsed_stream(result, is_async)
    if not call.stream:
        call.response = result
        return False
    call.http_response = getattr(result, "response", None)  # its request id is read by the exporter
    call.chunks = []
    wrap = wrap_async_stream if is_async else wrap_sync_stream
    client = reading_client(result, _event_reader, call, None) if PARSED_HOOK else None
    if client is None:  # events built some other way: read from their models as they pass
        return wrap(result, call, _observe_event, _withhold_nothing, None)
    # before wrapping: the stream's iterator is made (from a copy of the stream, in later 2.x) when first asked
    result._client = client
    return wrap(result, call, None, None, None)


def _parsed_stream(raw: Any, is_async: bool) -> Any:
    """The stream a raw streamed response parses to, as the user's ``parse()`` will return it."""
    if not is_async:
        return raw.parse()
    stream = raw._parse()
    raw._parsed_by_type[raw._cast_to] = stream  # so ``await raw.parse()`` returns this very (traced) stream
    return stream


def defer(target: Target, helper: Any, trace: Callable[[Any], Any]) -> None:
    """``messages.stream()``'s manager sends its request (traced from now on) when its block is entered."""
    name = _PENDING_REQUEST[isinstance(helper, AsyncMessageStreamManager)]
    setattr(helper, name, trace(getattr(helper, name)))


def _event_reader(build: BuildItem, call: Call, note: Any) -> BuildItem:
    """What builds each event of one stream: reads what it tells from its parsed JSON (dict lookups, where a
    model's attribute costs a slow lookup), then has anthropic build it. ``message_start``'s message and
    ``message_delta``'s usage are kept as parsed, for the exporter; nothing is withheld."""
    pieces = call.chunks
    unread = False

    def read_event(*, data: Any, cast_to: Any, response: Any) -> Any:
        nonlocal unread
        try:
            kind = data["type"]
            if kind == "content_block_delta":
                call.chunk_count += 1
                if call.first_token is None:
                    call.first_token = PENDING  # stamped when this event reaches the user
                delta = data["delta"]
                kind = delta["type"]
                if kind == "text_delta":
                    pieces.append(delta["text"])  # type: ignore[union-attr]
                elif kind == "input_json_delta" and call.tool_calls:
                    call.tool_calls[-1]["arguments"] += delta["partial_json"]
            elif kind == "content_block_start":
                block = data["content_block"]
                if block["type"] == "tool_use":
                    _tool_started(call, block.get("id"), block.get("name"))
            elif kind == "message_delta":
                call.finish_reason = data["delta"].get("stop_reason")
                call.usage = data.get("usage")
            elif kind == "message_start":
                call.response = data["message"]
        except Exception:  # not shaped like a Messages event (or a bug here): passed on unread, counted once
            if not unread:
                unread = True
                count_internal_error(call.rt, "stream", "reading a stream item")
        return build(data=data, cast_to=cast_to, response=response)

    return read_event


def _tool_started(call: Call, tool_id: Any, name: Any) -> None:
    tool = {"id": tool_id, "name": name, "arguments": ""}
    if call.tool_calls is None:
        call.tool_calls = [tool]
    else:
        call.tool_calls.append(tool)


def _observe_event(call: Call, event: Any, note: Any) -> bool:
    """``_event_reader`` for an anthropic that builds its events some other way: the same, read from the
    models; never withheld (the user asked for everything a stream sends).

    ``content_block_delta`` events are most of a stream and are handled first; blocks arrive one after the
    other, so a tool's argument deltas belong to the last tool block started.
    """
    kind = event.type
    if kind == "content_block_delta":
        call.chunk_count += 1
        if call.first_token is None:
            call.first_token = time.perf_counter()
        delta = event.delta
        kind = delta.type
        if kind == "text_delta":
            call.chunks.append(delta.text)  # type: ignore[union-attr]
        elif kind == "input_json_delta" and call.tool_calls:
            call.tool_calls[-1]["arguments"] += delta.partial_json
    elif kind == "content_block_start":
        block = event.content_block
        if block.type == "tool_use":
            _tool_started(call, block.id, block.name)
    elif kind == "message_delta":
        call.finish_reason = event.delta.stop_reason
        call.usage = event.usage  # cumulative; the exporter adds message_start's input side
    elif kind == "message_start":
        call.response = event.message  # model and input-side usage, read by the exporter
    return False


def _withhold_nothing(call: Call, event: Any, note: Any) -> bool:
    return False


# -- exporter thread ----------------------------------------------------------------------------------------------

def read_response(call: Call) -> None:
    """The request id, model, usage, output, stop reason and tool calls of a message or of a stream's events."""
    http_response = call.http_response
    if http_response is not None and call.provider_request_id is None:
        call.provider_request_id = _request_id(http_response.headers)
    message = call.response
    if message is None:
        return
    if isinstance(message, anthropic.AsyncAPIResponse):
        try:
            message = message._parse()
        except ValueError as exc:  # the body is not JSON: what the user's ``await raw.parse()`` raises
            call.error = error_of(exc)
            return
    call.response_model = field(message, "model")
    if call.stream:  # ``message`` is message_start's (a model, or as parsed); the rest came in the events
        delta_usage, start_usage = call.usage, field(message, "usage")
        call.usage = None if delta_usage is None or start_usage is None else (start_usage, delta_usage)
        for tool in call.tool_calls or ():
            tool["arguments"] = tool["arguments"] or "{}"  # a tool without input streams no argument delta
        return
    if call.provider_request_id is None:
        call.provider_request_id = getattr(message, "__dict__", _NO_DICT).get("_request_id")
    call.usage = getattr(message, "usage", None)
    call.finish_reason = getattr(message, "stop_reason", None)
    texts, tools = [], []
    for block in getattr(message, "content", None) or ():
        kind = block.type
        if kind == "text":
            texts.append(block.text)
        elif kind == "tool_use":
            tools.append({"id": block.id, "name": block.name, "arguments": orjson.dumps(block.input).decode()})
    call.output = "".join(texts) if texts else None
    call.tool_calls = tools or None


def read_usage(operation: str, usage: Any) -> tuple[int | None, ...]:
    """(input, output, cache reads, thinking, cache writes, 1-hour cache writes) from a message's usage, or
    from a stream's (message_start usage, message_delta usage): the delta's counts are cumulative and win,
    a count it leaves out is message_start's."""
    start, delta = usage if type(usage) is tuple else (usage, usage)
    uncached = _latest(delta, start, "input_tokens")
    cache_read = _latest(delta, start, "cache_read_input_tokens")
    cache_write = _latest(delta, start, "cache_creation_input_tokens")
    details = _latest(delta, start, "output_tokens_details")
    split = field(start, "cache_creation")
    total = None if uncached is None else uncached + (cache_read or 0) + (cache_write or 0)
    return (total, field(delta, "output_tokens"), cache_read, field(details, "thinking_tokens"), cache_write,
            field(split, "ephemeral_1h_input_tokens"))


def _latest(delta: Any, start: Any, name: str) -> Any:
    value = field(delta, name)
    return field(start, name) if value is None else value


def _request_id(headers: Any) -> str | None:
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value  # type: ignore[no-any-return]
    return None
