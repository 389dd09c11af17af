"""What Anthropic's routes share: api.anthropic.com's headers, ids, error bodies and faults, request validation.

Errors are ``{"type": "error", "error": {"type": ..., "message": ...}, "request_id": ...}`` with the error type
for the status (``invalid_request_error`` 400, ``not_found_error`` 404, ``rate_limit_error`` 429,
``api_error`` 500, ``overloaded_error`` 529). Every first-party answer carries ``request-id: req_011C…`` and
``anthropic-organization-id``; a 429 adds ``retry-after`` and ``anthropic-ratelimit-requests-*``.

What the real ``anthropic`` client (2.x) raises for each fault:

- ``rate_limit``: 429 → ``anthropic.RateLimitError``.
- ``server_error``: 500 ``api_error`` → ``anthropic.InternalServerError``.
- ``overloaded``: 529 ``overloaded_error`` → ``anthropic.OverloadedError`` (an ``InternalServerError``).
- ``bad_request``: 400 ``invalid_request_error`` → ``anthropic.BadRequestError``.
- ``stream_error``: in a stream, ``message_start`` and then ``event: error`` with ``overloaded_error`` →
  ``anthropic.APIStatusError`` with ``status_code == 200`` while iterating (the SDK builds it from the 200
  response); a plain call gets the 529 above.
- ``timeout``, ``stall``: ``anthropic.APITimeoutError`` from ``create()`` when the client's timeout is shorter
  than the stall; a streamed ``stall`` raises ``httpx2.ReadTimeout`` while iterating (the SDK does not wrap
  errors that happen inside a stream).
- ``reset``: ``anthropic.APIConnectionError`` from ``create()``; streamed, ``httpx2.ReadError`` (or
  ``RemoteProtocolError``) while iterating, after ``message_start``.
- ``invalid_json``: 200 with the body cut off → ``json.JSONDecodeError`` (not an ``anthropic.AnthropicError``);
  streamed, ``message_start`` arrives intact and the next event's JSON is cut off.
- ``missing_usage``: no ``usage`` anywhere: ``message.usage is None``; streamed, ``message_start`` and
  ``message_delta`` carry none (the SDK's ``messages.stream()`` accumulator then fails with
  ``AttributeError`` at ``message_delta``, as it would against any server that omits usage).
"""

from __future__ import annotations

import datetime
import math
import re
import secrets
import string
from typing import Any

from .delivery import hold_for_timeout
from .http import NOT_JSON, Exchange, Headers, sse
from .workload import FAULT_HEADER, Draw, Workload

__all__ = ["DIALECT", "ERROR_TYPES", "VERTEX_DIALECT", "Dialect", "new_id", "prepare", "stream_error_frame"]

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
               529: "overloaded_error"}
_ORGANIZATION_ID = "6c0b5f2e-1c8a-4a5e-9d3e-fake0000f00d"
_ID_ALPHABET = string.ascii_letters + string.digits
_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def new_id(prefix: str, length: int = 22) -> str:
    """An Anthropic-style id: ``msg_01…``, ``toolu_01…``, ``req_011C…`` and 22 (or ``length``) letters/digits."""
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


class Dialect:
    """A platform's conventions for Anthropic's Messages API: first-party, or Google Vertex AI.

    ``message_id_prefix`` is what message ids start with there; ``google_quota_errors`` makes a 429 Google's
    ``RESOURCE_EXHAUSTED`` body (Vertex's own quota system answers those, not Anthropic's); ``request_ids``
    says whether answers carry Anthropic's ``request-id`` header. ``fault_statuses`` is the status and message
    each status fault answers with (``stream_error`` on a plain call).
    """

    fault_statuses = {"server_error": (500, "Internal server error"), "overloaded": (529, "Overloaded"),
                      "stream_error": (529, "Overloaded"),
                      "bad_request": (400, "Invalid request: rejected by the fake server's bad_request fault.")}

    def __init__(self, name: str, *, message_id_prefix: str, request_ids: bool, google_quota_errors: bool) -> None:
        self.name = name
        self.message_id_prefix = message_id_prefix
        self.request_ids = request_ids
        self.google_quota_errors = google_quota_errors

    def headers(self, exchange: Exchange) -> Headers:
        if not self.request_ids:
            return ()
        if not exchange.request_id:
            exchange.request_id = new_id("req_011C", 20)
        return (("request-id", exchange.request_id), ("anthropic-organization-id", _ORGANIZATION_ID))

    def error_body(self, exchange: Exchange, status: int, message: str) -> dict[str, Any]:
        error = {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message}}
        if self.request_ids:
            self.headers(exchange)
            error["request_id"] = exchange.request_id
        return error

    async def send_error(self, exchange: Exchange, status: int, message: str, headers: Headers = ()) -> None:
        await exchange.respond_json(status, self.error_body(exchange, status, message), headers=headers)

    async def rate_limited(self, exchange: Exchange, draw: Draw) -> None:
        """The platform's 429."""
        wait = draw.retry_after_seconds
        if self.google_quota_errors:
            error = {"code": 429, "status": "RESOURCE_EXHAUSTED",
                     "message": "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_"
                                "model with base model: anthropic-claude. Please submit a quota increase request."}
            await exchange.respond_json(429, {"error": error})
            return
        reset = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=wait)
        headers = [("retry-after", str(math.ceil(wait))), ("anthropic-ratelimit-requests-limit", "50"),
                   ("anthropic-ratelimit-requests-remaining", "0"),
                   ("anthropic-ratelimit-requests-reset", reset.strftime("%Y-%m-%dT%H:%M:%SZ"))]
        await self.send_error(
            exchange, 429, "This request would exceed your organization's rate limit of 50 requests per minute. For "
                           "details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response "
                           "headers for current usage. Please reduce the prompt length or the maximum tokens "
                           "requested, or try again later.", headers)


DIALECT = Dialect("anthropic", message_id_prefix="msg_01", request_ids=True, google_quota_errors=False)
VERTEX_DIALECT = Dialect("vertex", message_id_prefix="msg_vrtx_01", request_ids=False, google_quota_errors=True)


def stream_error_frame() -> bytes:
    """The event Anthropic sends when an answer fails after its stream began (most often, overload)."""
    return sse({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "error")


def _validation_error(body: Any, *, model_in_body: bool) -> str | None:
    """The first thing wrong with a Messages request body (a dict), in the API's words, or None."""
    if model_in_body and not isinstance(body.get("model"), str):
        return "model: Field required" if "model" not in body else "model: Input should be a valid string"
    max_tokens = body.get("max_tokens")
    if "max_tokens" not in body:
        return "max_tokens: Field required"
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return "max_tokens: Input should be greater than or equal to 1"
    messages = body.get("messages")
    if not isinstance(messages, list):
        return "messages: Field required" if messages is None else "messages: Input should be a valid list"
    if not messages:
        return "messages: at least one message is required"
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            return f"messages.{index}.role: Input should be 'user' or 'assistant'"
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        if budget >= max_tokens:
            return "`max_tokens` must be greater than `thinking.budget_tokens`."
    tools = body.get("tools")
    if tools is not None and not (isinstance(tools, list) and all(isinstance(t, dict) and t.get("name")
                                                                    for t in tools)):
        return "tools: each tool needs a name"
    return None


async def prepare(exchange: Exchange, workload: Workload, dialect: Dialect, *, first_party: bool,
                  streamed_route: bool | None = None) -> Draw | None:
    """Check the body and API version, draw the request's fate and serve a status fault; None when answered.

    First-party requests name the model in the body and the version in the ``anthropic-version`` header; on
    the cloud platforms the model is in the path and the version is the body's ``anthropic_version``. Whether
    the answer streams is the body's ``stream`` unless the route says (``streamed_route``).
    """
    body = exchange.body
    if body is NOT_JSON or not isinstance(body, dict):
        await dialect.send_error(exchange, 400, "The request body is not valid JSON.")
        return None
    version = exchange.headers.get("anthropic-version") if first_party else body.get("anthropic_version")
    if not version:
        await dialect.send_error(exchange, 400, "anthropic-version: header is required" if first_party
                                 else "anthropic_version: Field required")
        return None
    if first_party and not _VERSION.match(version):
        await dialect.send_error(exchange, 400, f"anthropic-version: {version!r} is not a valid version")
        return None
    problem = _validation_error(body, model_in_body=first_party)
    if problem is not None:
        await dialect.send_error(exchange, 400, problem)
        return None
    draw = workload.draw(exchange.headers.get(FAULT_HEADER))
    if isinstance(draw, str):
        await dialect.send_error(exchange, 400, draw)
        return None
    streamed = bool(body.get("stream")) if streamed_route is None else streamed_route
    if await _reject_for_fault(exchange, draw, dialect, streamed):
        return None
    return draw


async def _reject_for_fault(exchange: Exchange, draw: Draw, dialect: Dialect, streamed: bool) -> bool:
    fault = draw.fault
    if fault == "rate_limit":
        await dialect.rate_limited(exchange, draw)
        return True
    if fault in dialect.fault_statuses and not (fault == "stream_error" and streamed):
        status, message = dialect.fault_statuses[fault]
        await dialect.send_error(exchange, status, message)
        return True
    await hold_for_timeout(draw)
    return False
