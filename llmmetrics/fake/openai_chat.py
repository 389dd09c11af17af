"""``POST /v1/chat/completions``: plain, streamed and tool-calling answers as api.openai.com sends them.

A streamed answer of N tokens is N + 2 chunks (role, N content deltas, finish) plus one usage-only chunk
(``choices == []``) when ``stream_options={"include_usage": True}``, then ``data: [DONE]``. ``max_tokens`` /
``max_completion_tokens`` cap the answer (finish reason ``length``). Reasoning models (``o1``, ``o3``,
``o4-mini``, ``gpt-5``…) add reasoning tokens. When function tools are offered (and ``tool_choice`` is not
``"none"``) the model calls one unless the last message is a tool's result, so an agent loop runs
call → result → answer. Prompts of 1024+ tokens report cached tokens.
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

_FINGERPRINT = "fp_f4c3d5e7a1"


def register(routes: Routes, workload: Workload) -> None:
    routes.add("POST", "/v1/chat/completions", functools.partial(_chat_completions, workload=workload),
               dialect=api.DIALECT)


async def _chat_completions(exchange: Exchange, workload: Workload) -> None:
    draw = await api.prepare(exchange, workload, ("model", "messages"))
    if draw is None:
        return
    body = exchange.body
    messages = body["messages"]
    if not isinstance(messages, list):
        await api.send_error(exchange, 400, "Invalid type for 'messages': expected an array.",
                             type="invalid_request_error", param="messages", code="invalid_type")
        return
    tools = body.get("tools")
    prompt_tokens = estimate_prompt_tokens(messages, tools)
    visible, reasoning, finish = api.output_lengths(body, draw, ("max_completion_tokens", "max_tokens"))
    tool_call = None
    if api.wants_tool_call(tools, body.get("tool_choice"), messages[-1]):
        function = api.pick_function(tools, body.get("tool_choice"))
        arguments = fake_arguments(draw.rng, function.get("parameters"))
        tool_call = {"id": "call_" + secrets.token_hex(12), "type": "function",
                     "function": {"name": function.get("name", "tool"), "arguments": arguments}}
        visible, finish = max(1, math.ceil(len(arguments) / 4)) + 7, "tool_calls"
        pieces: list[str] = []
    else:
        pieces = filler_words(draw.rng, visible)
    usage = None
    if draw.fault != "missing_usage":
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": visible + reasoning,
            "total_tokens": prompt_tokens + visible + reasoning,
            "prompt_tokens_details": {"cached_tokens": cached_prompt_tokens(prompt_tokens), "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
        }
    base = {"id": api.new_id("chatcmpl-"), "object": "chat.completion", "created": int(time.time()),
            "model": api.response_model_name(body["model"]), "service_tier": "default",
            "system_fingerprint": _FINGERPRINT}
    if body.get("stream"):
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        await _stream(exchange, draw, base, pieces, tool_call, finish, usage, include_usage)
        return
    message = {"role": "assistant", "content": None if tool_call else "".join(pieces), "refusal": None,
               "annotations": []}
    if tool_call:
        message["tool_calls"] = [tool_call]
    completion = {**base, "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}]}
    if usage is not None:
        completion["usage"] = usage
    await deliver(exchange, orjson.dumps(completion), draw,
                  delay=draw.first_token_delay + draw.per_token_delay * visible)


async def _stream(exchange: Exchange, draw: Draw, base: dict[str, Any], pieces: list[str],
                  tool_call: dict[str, Any] | None, finish: str, usage: dict[str, Any] | None,
                  include_usage: bool) -> None:
    base = {**base, "object": "chat.completion.chunk"}
    if include_usage:
        base["usage"] = None

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return sse({**base, "choices": [choice]})

    if tool_call:
        function = tool_call["function"]
        first = chunk({"role": "assistant", "content": None, "refusal": None, "tool_calls": [
            {"index": 0, "id": tool_call["id"], "type": "function",
             "function": {"name": function["name"], "arguments": ""}}]})
        middle = [chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
                  for piece in split_pieces(function["arguments"])]
    else:
        first = chunk({"role": "assistant", "content": "", "refusal": None})
        middle = [chunk({"content": piece}) for piece in pieces]
    frames = [first, *middle, chunk({}, finish)]
    if include_usage and usage is not None:
        frames.append(sse({**base, "choices": [], "usage": usage}))
    frames.append(api.DONE)
    await deliver_stream(exchange, frames, draw, error_frame=api.stream_error_frame())
