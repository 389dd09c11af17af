"""Anthropic's Messages API on Amazon Bedrock: ``POST /model/{model}/invoke`` and
``POST /model/{model}/invoke-with-response-stream``, as ``anthropic.AnthropicBedrock(base_url=server.url, ...)``
sends them and parses the answers (its stream decoder is botocore's, so the client needs ``anthropic[bedrock]``).

The body is the Messages request without ``model`` (it is in the path: ``anthropic.claude-haiku-4-5-20251001-v1:0``,
or an inference profile such as ``us.anthropic.…``; the answer's ``model`` is the bare Claude name) and without
``stream`` (the route says), with ``anthropic_version`` required. Answers are the Messages API's (see
``anthropic_messages``), with ids ``msg_bdrk_01…``, ``x-amzn-requestid`` (a UUID) on every answer and, on a
plain one, ``x-amzn-bedrock-input-token-count`` (uncached input), ``-output-token-count``,
``-cache-read-input-token-count``, ``-cache-write-input-token-count`` and ``-invocation-latency``.

A stream is AWS's binary event stream (``application/vnd.amazon.eventstream``): one message per event, headers
``:event-type: chunk``, ``:message-type: event``, ``:content-type: application/json``, a JSON payload
``{"bytes": <base64 of the event's JSON>, "p": <padding>}``, each message framed by its lengths and CRC32s.
The events are the Messages stream's without ``ping``; ``message_stop`` carries
``amazon-bedrock-invocationMetrics`` (the same four token counts, ``invocationLatency``, ``firstByteLatency``).

Requests must carry a SigV4 ``Authorization`` header for the ``bedrock`` service (with ``x-amz-date``) or a
Bedrock API key as ``Bearer``; the shape is checked, the signature is not (the server has no secret to check
it against). Errors are ``{"message": ...}`` with ``x-amzn-errortype``: ``rate_limit`` is 429
``ThrottlingException``, ``server_error`` 500 ``InternalServerException``, ``overloaded`` 503
``ServiceUnavailableException``, ``bad_request`` 400 ``ValidationException`` (the SDK raises ``RateLimitError``,
``InternalServerError``, ``ServiceUnavailableError``, ``BadRequestError``, with ``type`` None: the body is not
Anthropic's). ``stream_error`` sends a ``modelStreamErrorException`` message after the first event (the SDK
raises ``APIStatusError`` with ``type == "modelStreamErrorException"``), or a 500 on a plain call.
"""

from __future__ import annotations

import base64
import functools
import re
import struct
import uuid
import zlib
from typing import Any

import orjson

from . import anthropic_api as api
from .anthropic_messages import PromptCache, message_events, message_object, reply_for
from .delivery import deliver, deliver_stream
from .http import Exchange, Headers
from .routes import Routes
from .workload import Draw, Workload

__all__ = ["DIALECT", "encode_message", "register"]

EVENT_STREAM = "application/vnd.amazon.eventstream"
_ERROR_TYPES = {400: "ValidationException", 403: "AccessDeniedException", 404: "ResourceNotFoundException",
                429: "ThrottlingException", 500: "InternalServerException", 503: "ServiceUnavailableException"}
_COUNT_HEADERS = {"inputTokenCount": "x-amzn-bedrock-input-token-count",
                  "outputTokenCount": "x-amzn-bedrock-output-token-count",
                  "cacheReadInputTokenCount": "x-amzn-bedrock-cache-read-input-token-count",
                  "cacheWriteInputTokenCount": "x-amzn-bedrock-cache-write-input-token-count"}
_MODEL_ID = re.compile(r"^(?:(?:us|eu|apac|jp|au|us-gov|global)\.)?anthropic\.(?P<name>.+?)(?:-v\d+(?::\d+)?)?$")
_SIGV4 = re.compile(r"^AWS4-HMAC-SHA256 Credential=[^/]+/\d{8}/[a-z0-9-]+/bedrock/aws4_request, "
                    r"SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}$")


class _BedrockDialect(api.Dialect):
    fault_statuses = {
        "server_error": (500, "The system encountered an unexpected error during processing. Try your request again."),
        "stream_error": (500, "The system encountered an unexpected error during processing. Try your request again."),
        "overloaded": (503, "Bedrock is unable to process your request."),
        "bad_request": (400, "Malformed input request: rejected by the fake server's bad_request fault."),
    }

    def headers(self, exchange: Exchange) -> Headers:
        if not exchange.request_id:
            exchange.request_id = str(uuid.uuid4())
        return (("x-amzn-requestid", exchange.request_id),)

    def error_body(self, exchange: Exchange, status: int, message: str) -> dict[str, Any]:
        return {"message": message}

    async def send_error(self, exchange: Exchange, status: int, message: str, headers: Headers = ()) -> None:
        kind = _ERROR_TYPES.get(status, "InternalServerException")
        await exchange.respond_json(status, {"message": message}, headers=[
            ("x-amzn-errortype", f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"), *headers])

    async def rate_limited(self, exchange: Exchange, draw: Draw) -> None:
        await self.send_error(exchange, 429, "Too many requests, please wait before trying again.")


DIALECT = _BedrockDialect("bedrock", message_id_prefix="msg_bdrk_01", request_ids=False, google_quota_errors=False)


def register(routes: Routes, workload: Workload) -> None:
    cache = PromptCache()
    for suffix, streamed in (("invoke", False), ("invoke-with-response-stream", True)):
        routes.add("POST", "/model/{model}/" + suffix,
                   functools.partial(_invoke, workload=workload, cache=cache, streamed=streamed), dialect=DIALECT)


async def _invoke(exchange: Exchange, workload: Workload, cache: PromptCache, streamed: bool) -> None:
    authorization = exchange.headers.get("authorization", "")
    if not (authorization.startswith("Bearer ") or (_SIGV4.match(authorization) and "x-amz-date" in exchange.headers)):
        await DIALECT.send_error(exchange, 403, "Missing or malformed Authorization: expected a SigV4 signature "
                                 "for the bedrock service (with x-amz-date) or a Bedrock API key as Bearer.")
        return
    draw = await api.prepare(exchange, workload, DIALECT, first_party=False, streamed_route=streamed)
    if draw is None:
        return
    model_id = exchange.params["model"]
    found = _MODEL_ID.match(model_id)
    model = found.group("name") if found else model_id
    body = exchange.body
    reply = reply_for(body, draw, cache.account(model, body))
    message = message_object(DIALECT.message_id_prefix, model, reply)
    prompt = reply.prompt
    counts = {"inputTokenCount": prompt.uncached, "outputTokenCount": reply.output_tokens,
              "cacheReadInputTokenCount": prompt.read, "cacheWriteInputTokenCount": sum(prompt.created.values())}
    if not streamed:
        delay = draw.first_token_delay + draw.per_token_delay * reply.output_tokens
        headers = [(_COUNT_HEADERS[name], str(value)) for name, value in counts.items()]
        headers.append(("x-amzn-bedrock-invocation-latency", str(exchange.elapsed_ms + int(1000 * delay))))
        await deliver(exchange, orjson.dumps(message), draw, headers=headers, delay=delay)
        return
    events = [event for event in message_events(message, reply) if event["type"] != "ping"]
    events[-1]["amazon-bedrock-invocationMetrics"] = {
        **counts, "invocationLatency": int(1000 * (draw.first_token_delay + draw.per_token_delay * len(events))),
        "firstByteLatency": int(1000 * draw.first_token_delay)}
    frames = [_chunk(event) for event in events]
    error = encode_message({":message-type": "exception", ":exception-type": "modelStreamErrorException",
                            ":content-type": "application/json"},
                           orjson.dumps({"message": "An error occurred while streaming the response. Retry your "
                                                    "request.", "originalStatusCode": 500}))
    await deliver_stream(exchange, frames, draw, content_type=EVENT_STREAM, error_frame=error, cut=_cut_chunk,
                         headers=[("x-amzn-bedrock-content-type", "application/json")])


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One message of AWS's event-stream framing: prelude (lengths, CRC32), string headers, payload, CRC32."""
    encoded = b"".join(struct.pack("B", len(name)) + name.encode() + b"\x07" + struct.pack(">H", len(value.encode()))
                       + value.encode() for name, value in headers.items())
    prelude = struct.pack(">II", 16 + len(encoded) + len(payload), len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


_CHUNK_HEADERS = {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}


def _chunk(event: dict[str, Any] | bytes) -> bytes:
    data = event if isinstance(event, bytes) else orjson.dumps(event)
    padding = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[: 1 + len(data) % 61]
    return encode_message(_CHUNK_HEADERS, orjson.dumps({"bytes": base64.b64encode(data).decode(), "p": padding}))


def _cut_chunk(frame: bytes) -> bytes:
    """The same chunk, intact as a frame, with the event's JSON inside it cut in half (``invalid_json``)."""
    headers_length = struct.unpack(">I", frame[4:8])[0]
    payload = orjson.loads(frame[12 + headers_length:-4])
    data = base64.b64decode(payload["bytes"])
    return _chunk(data[: len(data) // 2])
