"""An OpenAI-compatible fake LLM endpoint on 127.0.0.1, for the demo, the tests and the benchmarks.

Why it exists: the instrumentation must be exercised through the *real* ``openai`` client over a *real*
socket — streaming framing, error classes, retries and timeouts included — without a network or an API key.
So this server speaks the wire format of api.openai.com closely enough that the client parses every answer
into its own types, and it can be told to misbehave in each way a real provider does.

Example::

    import openai
    from llmmetrics.fake_server import FakeLLMServer, FaultPlan

    with FakeLLMServer(seed=7) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        reply.model                # "gpt-4o-mini-2024-07-18"
        reply.usage.total_tokens   # prompt estimate + answer length

Endpoints (all under ``/v1``): ``POST chat/completions`` (plain, streamed, tool calls), ``POST responses``
(plain, streamed, function calls), ``POST embeddings`` (float or base64), ``GET models``,
``GET models/{id}``. Anything else gets OpenAI's 404 error shape.

Faults. A :class:`FaultPlan` gives each fault a share of requests (drawn from the seeded generator);
one request can force its outcome with the header ``x-fake-fault: <name>`` (``extra_headers=`` in the
client), which overrides the plan. Faults apply to the POST endpoints. What the real ``openai`` client
(3.57) does with each:

- ``rate_limit``: 429 with ``retry-after`` / ``retry-after-ms`` and ``code: "rate_limit_exceeded"``
  → ``openai.RateLimitError``.
- ``server_error``: 500, ``type: "server_error"`` → ``openai.InternalServerError``.
- ``bad_request``: 400, ``type: "invalid_request_error"`` → ``openai.BadRequestError``.
- ``timeout``: stalls ``FaultPlan.timeout_seconds`` before answering normally → ``openai.APITimeoutError``
  when the client's timeout is shorter (streams stall before the headers, so ``create()`` raises).
- ``invalid_json``: 200, ``content-type: application/json``, body cut off mid-object → the call raises
  ``json.JSONDecodeError`` (a ``ValueError``, *not* an ``openai.OpenAIError``, so ``except
  openai.OpenAIError`` does not catch it). Streamed, the first event arrives intact and the second
  ``data:`` line is cut off, so the same ``json.JSONDecodeError`` comes out of the iteration.
- ``missing_usage``: 200 with a valid answer and no usage → ``.usage is None``; a streamed chat answer has
  no usage chunk even when ``include_usage`` was asked for; a streamed response's final event has
  ``usage: null``; embeddings have ``usage is None``.
- ``none`` (header only): no fault for this request, whatever the plan says.

Every answer carries ``x-request-id: req_<32 hex>`` and ``openai-processing-ms``, as OpenAI's do.

Answers. Without a token limit an answer is 20–80 tokens (``answer_tokens=``), one filler word a token. A
streamed chat answer of N tokens is N + 2 chunks (role, N content deltas, finish) plus one usage-only chunk
(``choices == []``) when ``stream_options={"include_usage": True}``; a streamed Responses answer is N + 8
events. ``max_tokens`` / ``max_completion_tokens`` / ``max_output_tokens`` cap the answer (finish reason
``length``, Responses status ``incomplete``). Reasoning models (``o1``, ``o3``, ``o4-mini``, ``gpt-5``…)
add reasoning tokens. When function tools are offered (and ``tool_choice`` is not ``"none"``) the model
calls one unless the last message is a tool's result, so an agent loop runs call → result → answer.
Prompt tokens are estimated at ~4 characters a token; prompts of 1024+ tokens report cached tokens.

Determinism: with ``seed`` set, answers (lengths, text, tool arguments, latencies, which requests fail)
depend only on the seed and the order in which requests arrive; ids (``x-request-id``, ``chatcmpl-…``) are
always random, as they must be unique across runs.

Implementation: one asyncio event loop in a daemon thread with a small HTTP/1.1 reader (keep-alive,
``Content-Length`` or chunked request bodies, chunked SSE answers). Waiting — latency, stalls — is an
``asyncio.sleep``, so thousands of slow requests cost no threads and :meth:`FakeLLMServer.stop` ends them
at once.

Command line: ``python -m llmmetrics.fake_server --port 8080 --error-rate 0.05`` prints the base URL and
serves until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import hashlib
import logging
import math
import random
import re
import secrets
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Sequence

import orjson

__all__ = ["FAULT_HEADER", "FAULT_NAMES", "FakeLLMServer", "FaultPlan", "LatencyModel", "RecordedRequest", "main"]

_log = logging.getLogger(__name__)

FAULT_HEADER = "x-fake-fault"
"""Request header that forces one request's outcome; its values are :data:`FAULT_NAMES` or ``"none"``."""

FAULT_NAMES: tuple[str, ...] = ("rate_limit", "server_error", "timeout", "invalid_json", "missing_usage", "bad_request")
"""Every fault the server can inject, in the order the plan's shares are laid end to end."""


# ----------------------------------------------------------------------------------------------------------
# Configuration values
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LatencyModel:
    """How long answers take: time to first token, then a per-token pace, with jitter and rare slow calls.

    Each range is ``(low, high)`` seconds, drawn uniformly per request. A *slow* call (a ``slow_share`` of
    requests) adds ``slow_extra_seconds`` to the time to first token, so dashboards and alerts about slow
    calls have something to show. The defaults are the demo's profile; :meth:`none` is for tests and
    benchmarks.

    >>> LatencyModel.none().is_zero
    True
    """

    time_to_first_token: tuple[float, float] = (0.15, 0.6)
    per_token: tuple[float, float] = (0.005, 0.015)
    slow_share: float = 0.02
    slow_extra_seconds: tuple[float, float] = (3.0, 6.0)

    def __post_init__(self) -> None:
        for name in ("time_to_first_token", "per_token", "slow_extra_seconds"):
            low, high = getattr(self, name)
            if not (0 <= low <= high and math.isfinite(high)):
                raise ValueError(f"LatencyModel.{name} must be (low, high) with 0 <= low <= high, got {(low, high)}")
        if not 0 <= self.slow_share <= 1:
            raise ValueError(f"LatencyModel.slow_share must be within 0..1, got {self.slow_share}")

    @classmethod
    def none(cls) -> LatencyModel:
        """No delay at all: answers as fast as the socket allows."""
        return cls(time_to_first_token=(0.0, 0.0), per_token=(0.0, 0.0), slow_share=0.0, slow_extra_seconds=(0.0, 0.0))

    @property
    def is_zero(self) -> bool:
        """True when no request can ever wait, so the server skips drawing delays."""
        return self.time_to_first_token[1] == 0 and self.per_token[1] == 0 and (
            self.slow_share == 0 or self.slow_extra_seconds[1] == 0
        )


@dataclass(frozen=True)
class FaultPlan:
    """Shares (0..1) of requests that fail in each way; the rest succeed. Shares must add up to at most 1.

    ``timeout_seconds`` is how long a ``timeout`` fault stalls before answering normally: set it above the
    client's timeout. ``retry_after_seconds`` is what a 429 tells the client to wait.

    >>> FaultPlan(rate_limit=0.1).total
    0.1
    """

    rate_limit: float = 0.0
    server_error: float = 0.0
    timeout: float = 0.0
    invalid_json: float = 0.0
    missing_usage: float = 0.0
    bad_request: float = 0.0
    timeout_seconds: float = 30.0
    retry_after_seconds: float = 1.0

    def __post_init__(self) -> None:
        for name in FAULT_NAMES:
            share = getattr(self, name)
            if not 0 <= share <= 1:
                raise ValueError(f"FaultPlan.{name} must be a share within 0..1, got {share}")
        if self.total > 1 + 1e-9:
            raise ValueError(f"FaultPlan shares add up to {self.total:.3f}; they must add up to at most 1")
        if not (0 <= self.timeout_seconds and math.isfinite(self.timeout_seconds)):
            raise ValueError(f"FaultPlan.timeout_seconds must be a finite number >= 0, got {self.timeout_seconds}")
        if not (0 <= self.retry_after_seconds and math.isfinite(self.retry_after_seconds)):
            raise ValueError(f"FaultPlan.retry_after_seconds must be finite and >= 0, got {self.retry_after_seconds}")

    @property
    def total(self) -> float:
        """Share of requests that get any fault."""
        return sum(getattr(self, name) for name in FAULT_NAMES)

    @classmethod
    def with_error_rate(cls, rate: float, **overrides: float) -> FaultPlan:
        """Spread ``rate`` over the faults the way a provider's bad day looks: mostly 429s and 500s.

        Weights: rate_limit 40 %, server_error 25 %, timeout 10 %, missing_usage 10 %, invalid_json 5 %,
        bad_request 10 %.
        """
        if not 0 <= rate <= 1:
            raise ValueError(f"error rate must be within 0..1, got {rate}")
        weights = {"rate_limit": 0.40, "server_error": 0.25, "timeout": 0.10, "missing_usage": 0.10,
                   "invalid_json": 0.05, "bad_request": 0.10}
        return cls(**{name: rate * weight for name, weight in weights.items()}, **overrides)

    def draw(self, u: float) -> str | None:
        """The fault for a uniform draw ``u`` in [0, 1), or None for success."""
        edge = 0.0
        for name in FAULT_NAMES:
            edge += getattr(self, name)
            if u < edge:
                return name
        return None


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it; ``authorization`` is redacted, header names are lowercase."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    received_at: float = field(repr=False)


# ----------------------------------------------------------------------------------------------------------
# Models, text and token estimates
# ----------------------------------------------------------------------------------------------------------

_SNAPSHOTS = {
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
_EMBEDDING_MODELS = ("text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002")
_REASONING_MODEL = re.compile(r"^(o\d|gpt-5)")
_WORDS = (
    "the system reads each request and writes a short answer about latency tokens cost and errors so that "
    "every dashboard panel has data to show while the agent plans its next step calls a tool checks the "
    "result and reports back to the user with a clear summary of what happened during the run including "
    "retries timeouts cached prompts streaming chunks and the final usage numbers"
).split()
_FINGERPRINT = "fp_f4c3d5e7a1"


def response_model_name(requested: str) -> str:
    """The model name OpenAI answers with: a dated snapshot for a known alias, anything else as sent."""
    return _SNAPSHOTS.get(requested, requested)


def _is_reasoning_model(model: str) -> bool:
    return bool(_REASONING_MODEL.match(model))


def _text_chars(value: Any) -> tuple[int, int]:
    """(characters of text, images) in a message structure; roles and type tags are not text."""
    if isinstance(value, str):
        return len(value), 0
    chars = images = 0
    if isinstance(value, dict):
        if value.get("type") in ("image_url", "input_image"):
            return 0, 1
        for key, item in value.items():
            if key not in ("role", "type"):
                c, i = _text_chars(item)
                chars += c
                images += i
    elif isinstance(value, list):
        for item in value:
            c, i = _text_chars(item)
            chars += c
            images += i
    return chars, images


def estimate_prompt_tokens(messages: Any, tools: Any = None) -> int:
    """~4 characters a token, 4 tokens of framing a message, 3 to prime the answer, 85 an image."""
    chars, images = _text_chars(messages)
    tool_chars, _ = _text_chars(tools) if tools else (0, 0)
    count = len(messages) if isinstance(messages, list) else 1
    return 3 + 4 * count + 85 * images + math.ceil((chars + tool_chars) / 4)


def cached_prompt_tokens(prompt_tokens: int) -> int:
    """OpenAI caches prompts of 1024+ tokens, in 128-token steps; below that nothing is cached."""
    return 0 if prompt_tokens < 1024 else prompt_tokens - (prompt_tokens - 1024) % 128


def _filler_words(rng: random.Random, count: int) -> list[str]:
    """``count`` stream pieces (one token each) that join into readable filler text."""
    if count <= 0:
        return []
    words = rng.choices(_WORDS, k=count)
    words[0] = words[0].capitalize()
    pieces = [words[0]] + [" " + word for word in words[1:]]
    pieces[-1] += "."
    return pieces


def _fake_arguments(rng: random.Random, parameters: Any) -> str:
    """JSON arguments that fit a function's JSON schema closely enough for an agent loop to go on."""
    if not isinstance(parameters, dict):
        return "{}"
    properties = parameters.get("properties") or {}
    args: dict[str, Any] = {}
    for name, schema in properties.items() if isinstance(properties, dict) else ():
        schema = schema if isinstance(schema, dict) else {}
        kind = schema.get("type")
        if schema.get("enum"):
            args[name] = schema["enum"][0]
        elif kind == "integer":
            args[name] = rng.randint(1, 100)
        elif kind == "number":
            args[name] = round(rng.uniform(0, 100), 2)
        elif kind == "boolean":
            args[name] = rng.random() < 0.5
        elif kind == "array":
            args[name] = []
        elif kind == "object":
            args[name] = {}
        else:
            args[name] = " ".join(rng.choices(_WORDS, k=2))
    return orjson.dumps(args).decode()


def _split_pieces(text: str, size: int = 4) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


# ----------------------------------------------------------------------------------------------------------
# HTTP plumbing
# ----------------------------------------------------------------------------------------------------------

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 413: "Payload Too Large",
            429: "Too Many Requests", 431: "Request Header Fields Too Large", 500: "Internal Server Error"}
_MAX_BODY_BYTES = 64 * 1024 * 1024
_MAX_HEAD_BYTES = 64 * 1024


class _BadHttp(Exception):
    """The bytes on the wire are not an HTTP request we can answer; the connection is closed after."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Exchange:
    """One request and the means to answer it on its connection."""

    __slots__ = ("method", "path", "headers", "body", "writer", "keep_alive", "request_id", "started", "answered")

    def __init__(self, method: str, path: str, headers: dict[str, str], body: Any,
                 writer: asyncio.StreamWriter, keep_alive: bool) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.writer = writer
        self.keep_alive = keep_alive
        self.request_id = "req_" + secrets.token_hex(16)
        self.started = time.monotonic()
        self.answered = False

    def _head(self, status: int, extra: Sequence[tuple[str, str]]) -> list[bytes]:
        self.answered = True
        elapsed_ms = int((time.monotonic() - self.started) * 1000)
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}".encode(),
            b"x-request-id: " + self.request_id.encode(),
            b"openai-processing-ms: " + str(elapsed_ms).encode(),
            b"openai-version: 2020-10-01",
        ]
        if not self.keep_alive:
            lines.append(b"connection: close")
        lines.extend(f"{name}: {value}".encode() for name, value in extra)
        return lines

    async def send(self, status: int, payload: bytes, content_type: str = "application/json",
                   extra: Sequence[tuple[str, str]] = ()) -> None:
        lines = self._head(status, extra)
        lines.append(b"content-type: " + content_type.encode())
        lines.append(b"content-length: " + str(len(payload)).encode())
        self.writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + payload)
        await self.writer.drain()

    async def send_json(self, status: int, obj: Any, extra: Sequence[tuple[str, str]] = ()) -> None:
        await self.send(status, orjson.dumps(obj), extra=extra)

    async def send_error(self, status: int, message: str, *, type: str, param: str | None = None,
                         code: str | None = None, extra: Sequence[tuple[str, str]] = ()) -> None:
        error = {"error": {"message": message, "type": type, "param": param, "code": code}}
        await self.send_json(status, error, extra)

    async def send_events(self, frames: list[bytes], first_delay: float, gap: float) -> None:
        """Answer with a chunked SSE body: headers at once, the first frame after ``first_delay``, the rest
        ``gap`` apart. Without delays the whole answer goes out in one write."""
        lines = self._head(200, ())
        lines += [b"content-type: text/event-stream; charset=utf-8", b"cache-control: no-cache",
                  b"transfer-encoding: chunked"]
        head = b"\r\n".join(lines) + b"\r\n\r\n"
        if not first_delay and not gap:
            body = b"".join(frames)
            self.writer.write(head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
            await self.writer.drain()
            return
        self.writer.write(head)
        await self.writer.drain()
        await asyncio.sleep(first_delay)
        for index, frame in enumerate(frames):
            if index and gap:
                await asyncio.sleep(gap)
            self.writer.write(b"%x\r\n%s\r\n" % (len(frame), frame))
            await self.writer.drain()
        self.writer.write(b"0\r\n\r\n")
        await self.writer.drain()


def _sse(obj: Any, event: str | None = None) -> bytes:
    data = b"data: " + orjson.dumps(obj) + b"\n\n"
    return b"event: " + event.encode() + b"\n" + data if event else data


_DONE = b"data: [DONE]\n\n"


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes, bool] | None:
    """(method, path, headers, body, keep_alive) of the next request, or None when the client hung up."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    except asyncio.LimitOverrunError as exc:
        raise _BadHttp(431, "request head too large") from exc
    request_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadHttp(400, f"malformed request line {request_line[:80]!r}")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if not sep:
            raise _BadHttp(400, f"malformed header line {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    connection = headers.get("connection", "").lower()
    keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
    try:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await _read_chunked(reader)
        else:
            length = int(headers.get("content-length") or 0)
            if length < 0:
                raise _BadHttp(400, "negative content-length")
            if length > _MAX_BODY_BYTES:
                raise _BadHttp(413, f"request body over {_MAX_BODY_BYTES} bytes")
            body = await reader.readexactly(length) if length else b""
    except asyncio.IncompleteReadError:
        return None
    except (ValueError, asyncio.LimitOverrunError) as exc:
        raise _BadHttp(400, f"bad content-length or chunk framing: {exc}") from exc
    return method, target.split("?", 1)[0], headers, body, keep_alive


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return bytes(body)
        if len(body) + size > _MAX_BODY_BYTES:
            raise _BadHttp(413, f"request body over {_MAX_BODY_BYTES} bytes")
        body += await reader.readexactly(size)
        await reader.readexactly(2)


_NOT_JSON = object()


# ----------------------------------------------------------------------------------------------------------
# The server
# ----------------------------------------------------------------------------------------------------------


@dataclass
class _Draw:
    """Everything random about one request, drawn at arrival so a seeded run does not depend on timing."""

    fault: str | None
    first_token_delay: float
    per_token_delay: float
    answer_tokens: int
    rng: random.Random


class FakeLLMServer:
    """An OpenAI-compatible HTTP server on 127.0.0.1 for demos and tests; deterministic when seeded.

    ``latency=None`` means no delay (tests, benchmarks); pass ``LatencyModel()`` for the demo's realistic
    profile. ``answer_tokens`` is the range of answer lengths when the request sets no token limit.

    >>> with FakeLLMServer(seed=1) as server:
    ...     server.base_url.startswith("http://127.0.0.1:")
    True
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, latency: LatencyModel | None = None,
                 faults: FaultPlan | None = None, seed: int | None = None,
                 answer_tokens: tuple[int, int] = (20, 80), embedding_dimensions: int = 64,
                 max_recorded_requests: int = 1000) -> None:
        if not 1 <= answer_tokens[0] <= answer_tokens[1]:
            raise ValueError(f"answer_tokens must be (low, high) with 1 <= low <= high, got {answer_tokens}")
        if embedding_dimensions < 1:
            raise ValueError(f"embedding_dimensions must be >= 1, got {embedding_dimensions}")
        self._host = host
        self._port = port
        self._latency = latency or LatencyModel.none()
        self._faults = faults or FaultPlan()
        self._rng = random.Random(seed)
        self._answer_tokens = answer_tokens
        self._embedding_dimensions = embedding_dimensions
        self._recorded: collections.deque[RecordedRequest] = collections.deque(maxlen=max_recorded_requests)
        self._recorded_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._socket: socket.socket | None = None
        self._bound_port: int | None = None
        self._routes: dict[tuple[str, str], Callable[[_Exchange], Awaitable[None]]] = {
            ("POST", "/v1/chat/completions"): self._chat_completions,
            ("POST", "/v1/responses"): self._responses,
            ("POST", "/v1/embeddings"): self._embeddings,
            ("GET", "/v1/models"): self._list_models,
        }

    # -- lifecycle -------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (known once started)."""
        if self._bound_port is None:
            raise RuntimeError("FakeLLMServer is not started; call start() first")
        return self._bound_port

    @property
    def base_url(self) -> str:
        """What to pass as the client's ``base_url``: ``http://<host>:<port>/v1``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the most recent requests received, oldest first (bounded by ``max_recorded_requests``)."""
        with self._recorded_lock:
            return list(self._recorded)

    def set_faults(self, faults: FaultPlan) -> None:
        """Replace the fault plan; requests that arrive afterwards use it (safe from any thread)."""
        if not isinstance(faults, FaultPlan):
            raise TypeError(f"set_faults expects a FaultPlan, got {type(faults).__name__}")
        self._faults = faults

    def start(self) -> FakeLLMServer:
        """Bind (port 0 picks a free port) and serve from a daemon thread; returns self."""
        if self._thread is not None:
            raise RuntimeError("FakeLLMServer is already started")
        sock = socket.create_server((self._host, self._port), backlog=512)
        self._socket = sock
        self._bound_port = sock.getsockname()[1]
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(sock, ready, failure),
                                        name=f"fake-llm-server:{self.port}", daemon=True)
        self._thread.start()
        if not ready.wait(10) or failure:
            self.stop()
            raise RuntimeError(f"FakeLLMServer failed to start: {failure[0] if failure else 'timed out'}")
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close every socket and end in-flight requests; returns within about ``timeout`` seconds."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:  # loop closed in between: the thread is ending anyway
                pass
        thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._thread = None

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self, sock: socket.socket, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(sock, ready))
        except BaseException as exc:  # reported to start(); a server thread must not die silently
            failure.append(exc)
            ready.set()
        finally:
            loop.close()

    async def _serve(self, sock: socket.socket, ready: threading.Event) -> None:
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._on_connection, sock=sock, limit=_MAX_HEAD_BYTES)
        ready.set()
        await self._stopping.wait()
        server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=2)
        await asyncio.sleep(0)  # let the closed transports' connection_lost callbacks close their sockets

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        # Accepted sockets of a proto-0 listener miss asyncio's automatic TCP_NODELAY; without it the
        # small writes of a stream stall ~40 ms each on delayed ACKs.
        peer_socket = writer.get_extra_info("socket")
        if peer_socket is not None and peer_socket.family in (socket.AF_INET, socket.AF_INET6):
            peer_socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                try:
                    request = await _read_request(reader)
                except _BadHttp as exc:
                    exchange = _Exchange("?", "?", {}, None, writer, keep_alive=False)
                    await exchange.send_error(exc.status, str(exc), type="invalid_request_error")
                    return
                if request is None:
                    return
                method, path, headers, raw, keep_alive = request
                exchange = _Exchange(method, path, headers, self._parse_body(raw), writer, keep_alive)
                self._record(exchange)
                try:
                    await self._dispatch(exchange)
                except (ConnectionError, asyncio.CancelledError):
                    raise
                except Exception as exc:  # a bug here must reach the client as an answer, not a hang
                    _log.exception("fake server failed on %s %s", method, path)
                    if exchange.answered:
                        return
                    await exchange.send_error(500, f"fake server failed: {type(exc).__name__}: {exc}",
                                              type="server_error")
                if not keep_alive:
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self._connections.discard(task)
            writer.close()

    @staticmethod
    def _parse_body(raw: bytes) -> Any:
        if not raw:
            return None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _NOT_JSON

    def _record(self, exchange: _Exchange) -> None:
        if self._recorded.maxlen == 0:
            return
        headers = dict(exchange.headers)
        if "authorization" in headers:
            headers["authorization"] = headers["authorization"].split(" ", 1)[0] + " <redacted>"
        body = None if exchange.body is _NOT_JSON else exchange.body
        record = RecordedRequest(exchange.method, exchange.path, headers, body, time.time())
        with self._recorded_lock:
            self._recorded.append(record)

    async def _dispatch(self, exchange: _Exchange) -> None:
        handler = self._routes.get((exchange.method, exchange.path))
        if handler is None and exchange.method == "GET" and exchange.path.startswith("/v1/models/"):
            handler = self._retrieve_model
        if handler is None:
            await exchange.send_error(404, f"Invalid URL ({exchange.method} {exchange.path})",
                                      type="invalid_request_error")
            return
        if exchange.method == "POST" and not isinstance(exchange.body, dict):
            await exchange.send_error(
                400, "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
                     "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
                     "sent was not valid JSON.)", type="invalid_request_error")
            return
        await handler(exchange)

    # -- per-request decisions -------------------------------------------------------------------------

    def _draw(self, exchange: _Exchange) -> _Draw | str:
        """The request's random decisions, or an error message when its fault header is unknown."""
        rng = random.Random(self._rng.getrandbits(64))
        forced = exchange.headers.get(FAULT_HEADER)
        faults = self._faults
        if forced is not None:
            if forced != "none" and forced not in FAULT_NAMES:
                return (f"Unknown {FAULT_HEADER} value {forced!r}; expected one of "
                        f"{', '.join(FAULT_NAMES + ('none',))}")
            fault = None if forced == "none" else forced
        else:
            fault = faults.draw(rng.random()) if faults.total else None
        latency = self._latency
        first = per_token = 0.0
        if not latency.is_zero:
            first = rng.uniform(*latency.time_to_first_token)
            if latency.slow_share and rng.random() < latency.slow_share:
                first += rng.uniform(*latency.slow_extra_seconds)
            per_token = rng.uniform(*latency.per_token)
        answer = rng.randint(*self._answer_tokens)
        return _Draw(fault, first, per_token, answer, rng)

    async def _reject_for_fault(self, exchange: _Exchange, draw: _Draw, model: str) -> bool:
        """Answer with the drawn error, or stall for a timeout; True when the request is answered."""
        if draw.fault == "rate_limit":
            faults = self._faults
            wait = faults.retry_after_seconds
            await exchange.send_error(
                429, f"Rate limit reached for {model} in organization org-fake on requests per min (RPM): "
                     f"Limit 500, Used 500, Requested 1. Please try again in {wait:g}s. Visit "
                     "https://platform.openai.com/account/rate-limits to learn more.",
                type="requests", code="rate_limit_exceeded",
                extra=[("retry-after", str(math.ceil(wait))), ("retry-after-ms", str(int(wait * 1000))),
                       ("x-ratelimit-limit-requests", "500"), ("x-ratelimit-remaining-requests", "0")])
            return True
        if draw.fault == "server_error":
            await exchange.send_error(
                500, "The server had an error while processing your request. Sorry about that!", type="server_error")
            return True
        if draw.fault == "bad_request":
            await exchange.send_error(
                400, "Invalid request: rejected by the fake server's bad_request fault.",
                type="invalid_request_error", code="invalid_value")
            return True
        if draw.fault == "timeout":
            await asyncio.sleep(self._faults.timeout_seconds)
        return False

    async def _prepare(self, exchange: _Exchange, required: Sequence[str]) -> _Draw | None:
        """Validate the body, draw the request's fate and serve a fault; None when already answered."""
        body = exchange.body
        for name in required:
            if name not in body or body[name] in (None, "", []):
                await exchange.send_error(400, f"Missing required parameter: '{name}'.",
                                          type="invalid_request_error", param=name,
                                          code="missing_required_parameter")
                return None
        model = body["model"]
        if not isinstance(model, str):
            await exchange.send_error(400, "Invalid type for 'model': expected a string.",
                                      type="invalid_request_error", param="model", code="invalid_type")
            return None
        draw = self._draw(exchange)
        if isinstance(draw, str):
            await exchange.send_error(400, draw, type="invalid_request_error", code="invalid_fault_header")
            return None
        if await self._reject_for_fault(exchange, draw, model):
            return None
        return draw

    def _output_lengths(self, body: dict[str, Any], draw: _Draw, limit_keys: Sequence[str]) -> tuple[int, int, str]:
        """(visible tokens, reasoning tokens, finish reason): a set token limit caps the total."""
        reasoning = draw.answer_tokens * draw.rng.randint(1, 3) if _is_reasoning_model(body["model"]) else 0
        visible = draw.answer_tokens
        limit = next((body[k] for k in limit_keys if isinstance(body.get(k), int) and body[k] > 0), None)
        if limit is not None and visible + reasoning > limit:
            reasoning = min(reasoning, limit // 2)
            return limit - reasoning, reasoning, "length"
        return visible, reasoning, "stop"

    @staticmethod
    def _wants_tool_call(tools: Any, tool_choice: Any, last_item: Any) -> bool:
        """Call a tool when functions are offered, allowed, and the model has not just had a tool's result."""
        if not isinstance(tools, list) or tool_choice == "none":
            return False
        if not any(isinstance(tool, dict) and tool.get("type") == "function" for tool in tools):
            return False
        if tool_choice == "required" or isinstance(tool_choice, dict):
            return True
        last_type = last_item.get("role") or last_item.get("type") if isinstance(last_item, dict) else None
        return last_type not in ("tool", "function_call_output")

    @staticmethod
    def _pick_function(tools: list[Any], tool_choice: Any) -> dict[str, Any]:
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

    # -- /v1/chat/completions --------------------------------------------------------------------------

    async def _chat_completions(self, exchange: _Exchange) -> None:
        draw = await self._prepare(exchange, ("model", "messages"))
        if draw is None:
            return
        body = exchange.body
        messages = body["messages"]
        if not isinstance(messages, list):
            await exchange.send_error(400, "Invalid type for 'messages': expected an array.",
                                      type="invalid_request_error", param="messages", code="invalid_type")
            return
        tools = body.get("tools")
        prompt_tokens = estimate_prompt_tokens(messages, tools)
        visible, reasoning, finish = self._output_lengths(body, draw, ("max_completion_tokens", "max_tokens"))
        tool_call = None
        if self._wants_tool_call(tools, body.get("tool_choice"), messages[-1]):
            function = self._pick_function(tools, body.get("tool_choice"))
            arguments = _fake_arguments(draw.rng, function.get("parameters"))
            tool_call = {"id": "call_" + secrets.token_hex(12), "type": "function",
                         "function": {"name": function.get("name", "tool"), "arguments": arguments}}
            visible, finish = max(1, math.ceil(len(arguments) / 4)) + 7, "tool_calls"
            pieces: list[str] = []
        else:
            pieces = _filler_words(draw.rng, visible)
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
        base = {"id": _new_id("chatcmpl-"), "object": "chat.completion", "created": int(time.time()),
                "model": response_model_name(body["model"]), "service_tier": "default",
                "system_fingerprint": _FINGERPRINT}
        if body.get("stream"):
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            await self._stream_chat(exchange, draw, base, pieces, tool_call, finish, usage, include_usage)
            return
        message = {"role": "assistant", "content": None if tool_call else "".join(pieces), "refusal": None,
                   "annotations": []}
        if tool_call:
            message["tool_calls"] = [tool_call]
        completion = {**base, "choices": [{"index": 0, "message": message, "logprobs": None,
                                           "finish_reason": finish}]}
        if usage is not None:
            completion["usage"] = usage
        delay = draw.first_token_delay + draw.per_token_delay * visible
        if delay:
            await asyncio.sleep(delay)
        if draw.fault == "invalid_json":
            payload = orjson.dumps(completion)
            await exchange.send(200, payload[: len(payload) // 2])
            return
        await exchange.send_json(200, completion)

    async def _stream_chat(self, exchange: _Exchange, draw: _Draw, base: dict[str, Any], pieces: list[str],
                           tool_call: dict[str, Any] | None, finish: str, usage: dict[str, Any] | None,
                           include_usage: bool) -> None:
        base = {**base, "object": "chat.completion.chunk"}
        if include_usage:
            base["usage"] = None

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return _sse({**base, "choices": [choice]})

        if tool_call:
            function = tool_call["function"]
            first = chunk({"role": "assistant", "content": None, "refusal": None, "tool_calls": [
                {"index": 0, "id": tool_call["id"], "type": "function",
                 "function": {"name": function["name"], "arguments": ""}}]})
            middle = [chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
                      for piece in _split_pieces(function["arguments"])]
        else:
            first = chunk({"role": "assistant", "content": "", "refusal": None})
            middle = [chunk({"content": piece}) for piece in pieces]
        if draw.fault == "invalid_json":
            middle[0] = middle[0][: len(middle[0]) // 2] + b"\n\n"
        frames = [first, *middle, chunk({}, finish)]
        if include_usage and usage is not None:
            frames.append(_sse({**base, "choices": [], "usage": usage}))
        frames.append(_DONE)
        await exchange.send_events(frames, draw.first_token_delay, draw.per_token_delay)

    # -- /v1/responses ---------------------------------------------------------------------------------

    async def _responses(self, exchange: _Exchange) -> None:
        draw = await self._prepare(exchange, ("model",))
        if draw is None:
            return
        body = exchange.body
        items = body.get("input")
        items = items if isinstance(items, list) else [{"role": "user", "content": items or ""}]
        instructions = body.get("instructions")
        tools = body.get("tools")
        prompt_tokens = estimate_prompt_tokens(items + ([instructions] if instructions else []), tools)
        visible, reasoning, finish = self._output_lengths(body, draw, ("max_output_tokens",))
        if self._wants_tool_call(tools, body.get("tool_choice"), items[-1] if items else None):
            function = self._pick_function(tools, body.get("tool_choice"))
            arguments = _fake_arguments(draw.rng, function.get("parameters"))
            item: dict[str, Any] = {"id": _new_id("fc_"), "type": "function_call", "status": "completed",
                                    "arguments": arguments, "call_id": "call_" + secrets.token_hex(12),
                                    "name": function.get("name", "tool")}
            visible, finish, pieces = max(1, math.ceil(len(arguments) / 4)) + 7, "stop", _split_pieces(arguments)
        else:
            pieces = _filler_words(draw.rng, visible)
            item = {"id": _new_id("msg_"), "type": "message", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": "".join(pieces), "annotations": [],
                                 "logprobs": []}]}
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
            "id": _new_id("resp_"), "object": "response", "created_at": int(time.time()),
            "status": "incomplete" if incomplete else "completed", "background": False, "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "instructions": instructions, "max_output_tokens": body.get("max_output_tokens"),
            "model": response_model_name(body["model"]), "output": [item], "parallel_tool_calls": True,
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
            await self._stream_response(exchange, draw, response, item, pieces)
            return
        delay = draw.first_token_delay + draw.per_token_delay * visible
        if delay:
            await asyncio.sleep(delay)
        if draw.fault == "invalid_json":
            payload = orjson.dumps(response)
            await exchange.send(200, payload[: len(payload) // 2])
            return
        await exchange.send_json(200, response)

    async def _stream_response(self, exchange: _Exchange, draw: _Draw, response: dict[str, Any],
                               item: dict[str, Any], pieces: list[str]) -> None:
        frames: list[bytes] = []

        def event(kind: str, **payload: Any) -> None:
            frames.append(_sse({"type": kind, "sequence_number": len(frames), **payload}, kind))

        pending = {**response, "status": "in_progress", "output": [], "usage": None, "incomplete_details": None}
        event("response.created", response=pending)
        event("response.in_progress", response=pending)
        item_id = item["id"]
        final_status = item["status"]
        if item["type"] == "function_call":
            event("response.output_item.added", output_index=0,
                  item={**item, "status": "in_progress", "arguments": ""})
            for piece in pieces:
                event("response.function_call_arguments.delta", item_id=item_id, output_index=0, delta=piece)
            event("response.function_call_arguments.done", item_id=item_id, output_index=0,
                  arguments=item["arguments"], name=item["name"])
        else:
            part = item["content"][0]
            event("response.output_item.added", output_index=0,
                  item={**item, "status": "in_progress", "content": []})
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
        if draw.fault == "invalid_json":
            frames[1] = frames[1][: len(frames[1]) // 2] + b"\n\n"
        await exchange.send_events(frames, draw.first_token_delay, draw.per_token_delay)

    # -- /v1/embeddings --------------------------------------------------------------------------------

    async def _embeddings(self, exchange: _Exchange) -> None:
        draw = await self._prepare(exchange, ("model", "input"))
        if draw is None:
            return
        body = exchange.body
        inputs = body["input"]
        if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        if not isinstance(inputs, list) or not all(isinstance(x, (str, list)) and x for x in inputs):
            await exchange.send_error(400, "'$.input' is invalid: expected a non-empty string, array of strings, "
                                      "array of tokens or array of token arrays.",
                                      type="invalid_request_error", param="input", code="invalid_value")
            return
        dimensions = body.get("dimensions")
        dimensions = dimensions if isinstance(dimensions, int) and dimensions > 0 else self._embedding_dimensions
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        tokens = 0
        for index, text in enumerate(inputs):
            tokens += max(1, math.ceil(len(text) / 4)) if isinstance(text, str) else len(text)
            vector = _embed(text, dimensions)
            packed: Any = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode() if as_base64 else vector
            data.append({"object": "embedding", "index": index, "embedding": packed})
        answer: dict[str, Any] = {"object": "list", "data": data, "model": body["model"]}
        if draw.fault != "missing_usage":
            answer["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        if draw.first_token_delay:
            await asyncio.sleep(draw.first_token_delay)
        if draw.fault == "invalid_json":
            payload = orjson.dumps(answer)
            await exchange.send(200, payload[: len(payload) // 2])
            return
        await exchange.send_json(200, answer)

    # -- /v1/models ------------------------------------------------------------------------------------

    @staticmethod
    def _model_object(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": 1700000000, "owned_by": "system"}

    async def _list_models(self, exchange: _Exchange) -> None:
        names = [*_SNAPSHOTS, *_EMBEDDING_MODELS]
        await exchange.send_json(200, {"object": "list", "data": [self._model_object(n) for n in names]})

    async def _retrieve_model(self, exchange: _Exchange) -> None:
        name = exchange.path[len("/v1/models/"):]
        if name in _SNAPSHOTS or name in _SNAPSHOTS.values() or name in _EMBEDDING_MODELS:
            await exchange.send_json(200, self._model_object(name))
            return
        await exchange.send_error(404, f"The model `{name}` does not exist or you do not have access to it.",
                                  type="invalid_request_error", code="model_not_found")


def _embed(text: str | list[int], dimensions: int) -> list[float]:
    """A unit vector that depends only on the input, so equal texts embed equally."""
    key = text.encode() if isinstance(text, str) else orjson.dumps(text)
    rng = random.Random(hashlib.blake2b(key, digest_size=8).digest())
    vector = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    # Round through float32 so the float and base64 encodings carry the same numbers.
    return list(struct.unpack(f"<{dimensions}f", struct.pack(f"<{dimensions}f", *(v / norm for v in vector))))


# ----------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until Ctrl-C: ``python -m llmmetrics.fake_server --port 8080 --error-rate 0.05``."""
    parser = argparse.ArgumentParser(prog="llmmetrics fake-server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to bind; 0 picks a free one (default 8080)")
    parser.add_argument("--error-rate", type=float, default=0.0,
                        help="share of requests that fail, spread over all faults (default 0)")
    parser.add_argument("--timeout-seconds", type=float, default=30.0,
                        help="how long a 'timeout' fault stalls before answering (default 30)")
    parser.add_argument("--seed", type=int, default=None, help="seed for reproducible answers and faults")
    parser.add_argument("--no-latency", action="store_true", help="answer at once instead of like a real model")
    args = parser.parse_args(argv)
    try:
        faults = FaultPlan.with_error_rate(args.error_rate, timeout_seconds=args.timeout_seconds)
        server = FakeLLMServer(host=args.host, port=args.port, seed=args.seed, faults=faults,
                               latency=None if args.no_latency else LatencyModel())
        server.start()
    except (ValueError, OSError) as exc:
        print(f"fake-server: {exc}", file=sys.stderr)
        return 2
    print(server.base_url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
