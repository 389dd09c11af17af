"""``POST /v1/responses``: plain, streamed and function-calling answers of OpenAI's Responses API.

A streamed text answer of N tokens is N + 8 events, numbered by ``sequence_number``: ``response.created``,
``response.in_progress``, ``response.output_item.added``, ``response.content_part.added``, N
``response.output_text.delta``, ``response.output_text.done``, ``response.content_part.done``,
``response.output_item.done``, ``response.completed`` (``response.incomplete`` when ``max_output_tokens``
cut it, with ``incomplete_details.reason == "max_output_tokens"``). A function call streams its arguments as
``response.function_call_arguments.delta`` events. A ``stream_error`` fault ends the stream after
``response.created`` with ``response.failed``.
"""

from __future__ import annotations

import functools
import math
import secrets
import time
from typing import Any

import orjson

from . import openai_api as api
from .content import cached_prompt_tokens, estimate_prompt_tokens, fake_arguments, filler_words, split_pieces
from .delivery import deliver, deliver_stream
from .http import Exchange, sse
from .routes import Routes
from .workload import Draw, Workload

__all__ = ["register"]


def register(routes: Routes, workload: Workload) -> None:
    routes.add("POST", "/v1/responses", functools.partial(_responses, workload=workload), dialect=api.DIALECT)


async def _responses(exchange: Exchange, workload: Workload) -> None:
    draw = await api.prepare(exchange, workload, ("model",))
    if draw is None:
        return
    body = exchange.body
    items = body.get("input")
    items = items if isinstance(items, list) else [{"role": "user", "content": items or ""}]
    instructions = body.get("instructions")
    tools = body.get("tools")
    prompt_tokens = estimate_prompt_tokens(items + ([instructions] if instructions else []), tools)
    visible, reasoning, finish = api.output_lengths(body, draw, ("max_output_tokens",))
    if api.wants_tool_call(tools, body.get("tool_choice"), items[-1] if items else None):
        function = api.pick_function(tools, body.get("tool_choice"))
        arguments = fake_arguments(draw.rng, function.get("parameters"))
        item: dict[str, Any] = {"id": api.new_id("fc_"), "type": "function_call", "status": "completed",
                                "arguments": arguments, "call_id": "call_" + secrets.token_hex(12),
                                "name": function.get("name", "tool")}
        visible, finish, pieces = max(1, math.ceil(len(arguments) / 4)) + 7, "stop", split_pieces(arguments)
    else:
        pieces = filler_words(draw.rng, visible)
        item = {"id": api.new_id("msg_"), "type": "message", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": "".join(pieces), "annotations": [], "logprobs": []}]}
    usage = None
    if draw.fault != "missing_usage":
        usage = {"input_tokens": prompt_tokens,
                 "input_tokens_details": {"cached_tokens": cached_prompt_tokens(prompt_tokens),
                                          "cache_write_tokens": 0},
                 "output_tokens": visible + reasoning,
                 "output_tokens_details": {"reasoning_tokens": reasoning},
                 "total_tokens": prompt_tokens + visible + reasoning}
    incomplete = finish == "length"
    response = {
        "id": api.new_id("resp_"), "object": "response", "created_at": int(time.time()),
        "status": "incomplete" if incomplete else "completed", "background": False, "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": instructions, "max_output_tokens": body.get("max_output_tokens"),
        "model": api.response_model_name(body["model"]), "output": [item], "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": "medium" if reasoning else None, "summary": None},
        "service_tier": "default", "store": True, "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": tools or [], "top_p": 1.0, "truncation": "disabled", "usage": usage, "user": None,
        "metadata": body.get("metadata") or {},
    }
    if incomplete and item["type"] == "message":
        item["status"] = "incomplete"
    if body.get("stream"):
        await _stream(exchange, draw, response, item, pieces)
        return
    await deliver(exchange, orjson.dumps(response), draw,
                  delay=draw.first_token_delay + draw.per_token_delay * visible)


async def _stream(exchange: Exchange, draw: Draw, response: dict[str, Any], item: dict[str, Any],
                  pieces: list[str]) -> None:
    frames: list[bytes] = []

    def event(kind: str, **payload: Any) -> None:
        frames.append(sse({"type": kind, "sequence_number": len(frames), **payload}, kind))

    pending = {**response, "status": "in_progress", "output": [], "usage": None, "incomplete_details": None}
    event("response.created", response=pending)
    event("response.in_progress", response=pending)
    item_id = item["id"]
    final_status = item["status"]
    if item["type"] == "function_call":
        event("response.output_item.added", output_index=0, item={**item, "status": "in_progress", "arguments": ""})
        for piece in pieces:
            event("response.function_call_arguments.delta", item_id=item_id, output_index=0, delta=piece)
        event("response.function_call_arguments.done", item_id=item_id, output_index=0,
              arguments=item["arguments"], name=item["name"])
    else:
        part = item["content"][0]
        event("response.output_item.added", output_index=0, item={**item, "status": "in_progress", "content": []})
        event("response.content_part.added", item_id=item_id, output_index=0, content_index=0,
              part={**part, "text": ""})
        for piece in pieces:
            event("response.output_text.delta", item_id=item_id, output_index=0, content_index=0,
                  delta=piece, logprobs=[])
        event("response.output_text.done", item_id=item_id, output_index=0, content_index=0,
              text=part["text"], logprobs=[])
        event("response.content_part.done", item_id=item_id, output_index=0, content_index=0, part=part)
    event("response.output_item.done", output_index=0, item={**item, "status": final_status})
    kind = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
    event(kind, response=response)
    await deliver_stream(exchange, frames, draw, error_frame=_failed_event(pending))


def _failed_event(pending: dict[str, Any]) -> bytes:
    """What the Responses API streams when an answer fails after it began: ``response.failed`` as the second
    event (the client raises nothing; the response's ``status`` is ``failed`` and ``error`` says why)."""
    error = {"code": "server_error",
             "message": "The server had an error while processing your request. Sorry about that!"}
    failed = {**pending, "status": "failed", "error": error}
    return sse({"type": "response.failed", "sequence_number": 1, "response": failed}, "response.failed")
