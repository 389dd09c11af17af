"""What every OpenAI route shares: api.openai.com's headers, error bodies and faults, model names, and the
model's decisions (answer length, when to call a tool).

Every answer carries ``x-request-id: req_<32 hex>``, ``openai-processing-ms`` and ``openai-version``. Errors
are ``{"error": {"message", "type", "param", "code"}}``. What the real ``openai`` client (3.57) raises for each
fault:

- ``rate_limit``: 429 with ``retry-after`` / ``retry-after-ms``, ``code: "rate_limit_exceeded"`` →
  ``openai.RateLimitError``.
- ``server_error``: 500, ``type: "server_error"`` → ``openai.InternalServerError``.
- ``overloaded``: 503 "The server is overloaded or not ready yet." → ``openai.InternalServerError``.
- ``bad_request``: 400, ``type: "invalid_request_error"`` → ``openai.BadRequestError``.
- ``stream_error``: in a stream, the first chunk and then ``data: {"error": {...}}`` → ``openai.APIError``
  (not an ``APIStatusError``) while iterating; a plain call gets the 500 above.
- ``timeout``, ``stall``: ``openai.APITimeoutError`` when the client's timeout is shorter (from ``create()``
  for ``timeout``; for a streamed ``stall``, while iterating after the first chunk).
- ``reset``: ``openai.APIConnectionError`` (from ``create()``; streamed, while iterating after the first chunk).
  openai 1.x/2.x raise httpx's own ``RemoteProtocolError``/``ReadError``/``ReadTimeout`` from a stream.
- ``invalid_json``: 200 with the body cut off → ``json.JSONDecodeError`` (a ``ValueError``, *not* an
  ``openai.OpenAIError``); streamed, the first chunk arrives intact and the second is cut off.
- ``missing_usage``: a valid answer without usage (``.usage is None``; no usage chunk in a stream).
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Sequence
from typing import Any

import orjson

from .delivery import hold_for_timeout
from .http import NOT_JSON, Exchange, Headers
from .workload import FAULT_HEADER, Draw, Workload

__all__ = ["DIALECT", "DONE", "EMBEDDING_MODELS", "SNAPSHOTS", "is_reasoning_model", "new_id", "output_lengths",
           "pick_function", "prepare", "response_model_name", "send_error", "stream_error_frame", "wants_tool_call"]

SNAPSHOTS = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "gpt-5": "gpt-5-2025-08-07",
    "gpt-5-mini": "gpt-5-mini-2025-08-07",
    "gpt-5-nano": "gpt-5-nano-2025-08-07",
    "o1": "o1-2024-12-17",
    "o3": "o3-2025-04-16",
    "o3-mini": "o3-mini-2025-01-31",
    "o4-mini": "o4-mini-2025-04-16",
    "gpt-3.5-turbo": "gpt-3.5-turbo-0125",
}
EMBEDDING_MODELS = ("text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002")
_REASONING_MODEL = re.compile(r"^(o\d|gpt-5)")

DONE = b"data: [DONE]\n\n"

_BAD_JSON = ("We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP "
             "library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)")


def response_model_name(requested: str) -> str:
    """The model name OpenAI answers with: a dated snapshot for a known alias, anything else as sent."""
    return SNAPSHOTS.get(requested, requested)


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


class _OpenAIDialect:
    """api.openai.com's headers on every answer and its error shape, for the server's generic answers."""

    name = "openai"

    @staticmethod
    def headers(exchange: Exchange) -> Headers:
        if not exchange.request_id:
            exchange.request_id = "req_" + secrets.token_hex(16)
        return (("x-request-id", exchange.request_id), ("openai-processing-ms", str(exchange.elapsed_ms)),
                ("openai-version", "2020-10-01"))

    @staticmethod
    def error_body(exchange: Exchange, status: int, message: str) -> dict[str, Any]:
        kind = "server_error" if status >= 500 else "invalid_request_error"
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}


DIALECT = _OpenAIDialect()


async def send_error(exchange: Exchange, status: int, message: str, *, type: str, param: str | None = None,
                     code: str | None = None, headers: Headers = ()) -> None:
    error = {"error": {"message": message, "type": type, "param": param, "code": code}}
    await exchange.respond_json(status, error, headers=headers)


def stream_error_frame() -> bytes:
    """The event OpenAI sends when an answer fails after its stream began."""
    error = {"message": "The server had an error while processing your request. Sorry about that!",
             "type": "server_error", "param": None, "code": None}
    return b"data: " + orjson.dumps({"error": error}) + b"\n\n"


async def _reject_for_fault(exchange: Exchange, draw: Draw, model: str, streamed: bool) -> bool:
    """Answer with the drawn error status, or hold a timeout; True when the request is answered."""
    fault = draw.fault
    if fault == "rate_limit":
        wait = draw.retry_after_seconds
        await send_error(
            exchange, 429, f"Rate limit reached for {model} in organization org-fake on requests per min (RPM): "
                           f"Limit 500, Used 500, Requested 1. Please try again in {wait:g}s. Visit "
                           "https://platform.openai.com/account/rate-limits to learn more.",
            type="requests", code="rate_limit_exceeded",
            headers=[("retry-after", str(math.ceil(wait))), ("retry-after-ms", str(int(wait * 1000))),
                     ("x-ratelimit-limit-requests", "500"), ("x-ratelimit-remaining-requests", "0")])
        return True
    if fault == "server_error" or (fault == "stream_error" and not streamed):
        await send_error(exchange, 500, "The server had an error while processing your request. Sorry about that!",
                         type="server_error")
        return True
    if fault == "overloaded":
        await send_error(exchange, 503, "The server is overloaded or not ready yet.", type="server_error")
        return True
    if fault == "bad_request":
        await send_error(exchange, 400, "Invalid request: rejected by the fake server's bad_request fault.",
                         type="invalid_request_error", code="invalid_value")
        return True
    await hold_for_timeout(draw)
    return False


async def prepare(exchange: Exchange, workload: Workload, required: Sequence[str]) -> Draw | None:
    """Validate the body, draw the request's fate and serve a status fault; None when already answered."""
    body = exchange.body
    if body is NOT_JSON or not isinstance(body, dict):
        await send_error(exchange, 400, _BAD_JSON, type="invalid_request_error")
        return None
    for name in required:
        if name not in body or body[name] in (None, "", []):
            await send_error(exchange, 400, f"Missing required parameter: '{name}'.", type="invalid_request_error",
                             param=name, code="missing_required_parameter")
            return None
    model = body["model"]
    if not isinstance(model, str):
        await send_error(exchange, 400, "Invalid type for 'model': expected a string.",
                         type="invalid_request_error", param="model", code="invalid_type")
        return None
    draw = workload.draw(exchange.headers.get(FAULT_HEADER))
    if isinstance(draw, str):
        await send_error(exchange, 400, draw, type="invalid_request_error", code="invalid_fault_header")
        return None
    if await _reject_for_fault(exchange, draw, model, bool(body.get("stream"))):
        return None
    return draw


def is_reasoning_model(model: str) -> bool:
    return bool(_REASONING_MODEL.match(model))


def output_lengths(body: dict[str, Any], draw: Draw, limit_keys: Sequence[str]) -> tuple[int, int, str]:
    """(visible tokens, reasoning tokens, finish reason): a set token limit caps the total."""
    reasoning = draw.answer_tokens * draw.rng.randint(1, 3) if is_reasoning_model(body["model"]) else 0
    visible = draw.answer_tokens
    limit = next((body[k] for k in limit_keys if isinstance(body.get(k), int) and body[k] > 0), None)
    if limit is not None and visible + reasoning > limit:
        reasoning = min(reasoning, limit // 2)
        return limit - reasoning, reasoning, "length"
    return visible, reasoning, "stop"


def wants_tool_call(tools: Any, tool_choice: Any, last_item: Any) -> bool:
    """Call a tool when functions are offered, allowed, and the model has not just had a tool's result."""
    if not isinstance(tools, list) or tool_choice == "none":
        return False
    if not any(isinstance(tool, dict) and tool.get("type") == "function" for tool in tools):
        return False
    if tool_choice == "required" or isinstance(tool_choice, dict):
        return True
    last_type = last_item.get("role") or last_item.get("type") if isinstance(last_item, dict) else None
    return last_type not in ("tool", "function_call_output")


def pick_function(tools: list[Any], tool_choice: Any) -> dict[str, Any]:
    """The function definition to call: the one tool_choice names, else the first function tool."""
    functions = []
    for tool in tools:
        if isinstance(tool, dict) and tool.get("type") == "function":
            functions.append(tool.get("function", tool))  # chat nests it, responses does not
    wanted = None
    if isinstance(tool_choice, dict):
        wanted = (tool_choice.get("function") or tool_choice).get("name")
    for function in functions:
        if wanted is None or function.get("name") == wanted:
            return function
    return functions[0]
