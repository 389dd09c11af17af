"""Fixed wire answers through the real ``openai`` client's own HTTP transport, for identity tests.

Comparing what a bare and an instrumented client give needs byte-identical answers, which the fake server
does not give twice (its ids and timestamps are fresh per answer). So these tests swap only the transport
(``MockTransport`` of the HTTP library the installed openai is built on: ``httpx2`` for 3.x, ``httpx``
before) for a handler answering fixed bodies shaped like OpenAI's; everything above it is the real client.
Chat streams answer with the usage chunk (and a null ``usage`` on every other chunk) exactly when the request
asks for it, as the API does.
"""

from __future__ import annotations

from typing import Any

import openai
import orjson

__all__ = ["http_library", "transport_client", "FIXED_REQUEST_ID"]

FIXED_REQUEST_ID = "req_fixed"
MODEL = "gpt-4o-mini-2024-07-18"
_CHUNK = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": MODEL}
_CHAT = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": MODEL,
         "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop",
                      "logprobs": None}],
         "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7,
                   "prompt_tokens_details": {"cached_tokens": 0},
                   "completion_tokens_details": {"reasoning_tokens": 0}}}
_RESPONSE = {"id": "resp_1", "object": "response", "created_at": 1, "status": "completed", "error": None,
             "incomplete_details": None, "instructions": None, "model": "gpt-4.1-2025-04-14",
             "output": [{"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
                         "content": [{"type": "output_text", "text": "Hi there", "annotations": []}]}],
             "parallel_tool_calls": True, "tool_choice": "auto", "tools": [], "temperature": 1.0, "top_p": 1.0,
             "usage": {"input_tokens": 5, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 2,
                       "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 7}}
_EMBEDDINGS = {"object": "list", "model": "text-embedding-3-small",
               "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5, 0.125]}],
               "usage": {"prompt_tokens": 2, "total_tokens": 2}}
_ERROR = {"error": {"message": "overloaded", "type": "server_error", "param": None, "code": None}}


def http_library() -> Any:
    """The HTTP library the installed openai is built on: ``httpx2`` for openai 3.x, ``httpx`` before."""
    if int(openai.__version__.split(".")[0]) >= 3:
        import httpx2

        return httpx2
    import httpx

    return httpx


def _sse(events: list[dict[str, Any]], named: bool = False) -> bytes:
    out = b"".join((b"event: " + e["type"].encode() + b"\n" if named else b"") + b"data: " + orjson.dumps(e) + b"\n\n"
                   for e in events)
    return out + (b"" if named else b"data: [DONE]\n\n")


def _chat_stream(include_usage: bool) -> bytes:
    """As the API streams: asked for usage, every chunk carries ``"usage": null`` and one more carries it."""
    chunk = {**_CHUNK, "usage": None} if include_usage else _CHUNK
    events = [{**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    events += [{**chunk, "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]} for w in "a b c".split()]
    events.append({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if include_usage:
        events.append({**_CHUNK, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}})
    return _sse(events)


def _chat_tool_stream(include_usage: bool) -> bytes:
    """A streamed tool call: its id and name first, then the arguments in pieces."""
    chunk = {**_CHUNK, "usage": None} if include_usage else _CHUNK
    start = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": ""}}
    events = [{**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": None, "tool_calls": [start]},
                                     "finish_reason": None}]}]
    events += [{**chunk, "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": p}}]},
                                      "finish_reason": None}]} for p in ('{"order"', ': "1234"}')]
    events.append({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    if include_usage:
        events.append({**_CHUNK, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15}})
    return _sse(events)


def _responses_stream() -> bytes:
    pending = {**_RESPONSE, "status": "in_progress", "output": [], "usage": None}
    events: list[dict[str, Any]] = [{"type": "response.created", "response": pending}]
    events += [{"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0,
                "delta": piece} for piece in ("Hi", " there")]
    events.append({"type": "response.completed", "response": _RESPONSE})
    return _sse([{**e, "sequence_number": i} for i, e in enumerate(events)], named=True)


def _answer(http: Any, request: Any) -> Any:
    body = orjson.loads(request.content)
    headers = {"x-request-id": FIXED_REQUEST_ID}
    if body.get("model") == "broken":
        return http.Response(503, json=_ERROR, headers=headers)
    path = request.url.path
    if path.endswith("/embeddings"):
        return http.Response(200, json=_EMBEDDINGS, headers=headers)
    stream = {**headers, "content-type": "text/event-stream"}
    if path.endswith("/responses"):
        if body.get("stream"):
            return http.Response(200, content=_responses_stream(), headers=stream)
        return http.Response(200, json=_RESPONSE, headers=headers)
    if body.get("stream"):
        include = bool((body.get("stream_options") or {}).get("include_usage"))
        answer = _chat_tool_stream if body.get("tools") else _chat_stream
        return http.Response(200, content=answer(include), headers=stream)
    return http.Response(200, json=_CHAT, headers=headers)


def transport_client(is_async: bool = False) -> Any:
    """A real openai client whose transport answers the fixed bodies above (model ``broken``: a 503)."""
    http = http_library()
    if is_async:
        async def handler(request: Any) -> Any:
            return _answer(http, request)
        return openai.AsyncOpenAI(base_url="http://llm.test/v1", api_key="k", max_retries=0,
                                  http_client=http.AsyncClient(transport=http.MockTransport(handler)))
    return openai.OpenAI(base_url="http://llm.test/v1", api_key="k", max_retries=0,
                         http_client=http.Client(transport=http.MockTransport(lambda r: _answer(http, r))))
