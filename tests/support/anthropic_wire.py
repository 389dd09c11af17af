"""Fixed Messages API answers through the real ``anthropic`` client's own HTTP transport, for identity tests.

The twin of ``tests/support/wire.py`` for Anthropic's client: the fake server's ids and timestamps are fresh
per answer, so comparing what a bare and an instrumented client give needs byte-identical answers. Only the
transport (``httpx2.MockTransport``, the HTTP library anthropic 2.x is built on) is swapped; everything above
it is the real client. Model ``broken`` answers a 529 ``overloaded_error``.
"""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
import orjson

__all__ = ["FIXED_REQUEST_ID", "MESSAGE", "claude_transport_client"]

FIXED_REQUEST_ID = "req_011CFixedFixedFixedFix"
MODEL = "claude-haiku-4-5-20251001"
_USAGE = {"input_tokens": 9, "output_tokens": 4, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
MESSAGE = {"id": "msg_01Fixed", "type": "message", "role": "assistant", "model": MODEL,
           "content": [{"type": "text", "text": "Hi there"}], "stop_reason": "end_turn", "stop_sequence": None,
           "usage": _USAGE}
_ERROR = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}, "request_id": FIXED_REQUEST_ID}


def _stream() -> bytes:
    start = {**MESSAGE, "content": [], "stop_reason": None, "usage": {**_USAGE, "output_tokens": 1}}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        *({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
          for piece in ("Hi", " there")),
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": 4}},
        {"type": "message_stop"},
    ]
    return b"".join(b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events)


def _answer(request: httpx2.Request) -> httpx2.Response:
    body = orjson.loads(request.content)
    headers = {"request-id": FIXED_REQUEST_ID}
    if body.get("model") == "broken":
        return httpx2.Response(529, json=_ERROR, headers=headers)
    if body.get("stream"):
        return httpx2.Response(200, content=_stream(), headers={**headers, "content-type": "text/event-stream"})
    return httpx2.Response(200, json=MESSAGE, headers=headers)


def claude_transport_client(is_async: bool = False) -> Any:
    """A real anthropic client whose transport answers the fixed bodies above."""
    if is_async:
        async def handler(request: httpx2.Request) -> httpx2.Response:
            return _answer(request)
        return anthropic.AsyncAnthropic(base_url="http://claude.test", api_key="k", max_retries=0,
                                        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)))
    return anthropic.Anthropic(base_url="http://claude.test", api_key="k", max_retries=0,
                               http_client=httpx2.Client(transport=httpx2.MockTransport(_answer)))
