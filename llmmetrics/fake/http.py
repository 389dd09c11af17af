"""HTTP/1.1 for the fake server: ``h11`` parses and frames, asyncio streams move the bytes.

Why h11 rather than an ASGI app on uvicorn: h11 is already installed wherever llmmetrics is (the ``openai``
and ``anthropic`` clients reach it through httpx/httpcore), so the core package gains no dependency, and being
sans-IO it leaves the socket in our hands. The faults need exactly that: a connection reset in the middle of
a chunked body (``SO_LINGER`` 0, then abort), a stall between two chunks, headers that go out long before the
body, ``TCP_NODELAY`` on every accepted socket. ASGI hides the socket and uvicorn would add click, its own
event-loop policy and signal handling to a library's install.

h11 handles request framing (``Content-Length``, chunked bodies, keep-alive, HTTP/1.0, pipelining limits) and
answer framing (``Content-Length`` for whole answers, chunked for streams); this module adds a body size limit
and the answer primitives the wire APIs use (:class:`Exchange`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from typing import Any

import h11
import orjson

__all__ = ["NOT_JSON", "Exchange", "Headers", "MAX_BODY_BYTES", "serve_connection", "sse"]

_log = logging.getLogger(__name__)

Headers = Sequence[tuple[str, str]]

MAX_BODY_BYTES = 64 * 1024 * 1024
_MAX_HEAD_BYTES = 64 * 1024
_READ_SIZE = 256 * 1024
_DRAIN_WAIT_SECONDS = 1.0

NOT_JSON: Any = type("NotJson", (), {"__repr__": lambda self: "NOT_JSON"})()
"""The body of a request that had one, but not valid JSON."""


def sse(obj: Any, event: str | None = None) -> bytes:
    """One Server-Sent Event: ``event:`` line when named, one ``data:`` line of JSON, blank line."""
    data = b"data: " + orjson.dumps(obj) + b"\n\n"
    return b"event: " + event.encode() + b"\n" + data if event else data


class Exchange:
    """One request, and the means to answer it once on its connection.

    ``headers`` has lowercase names (the last value wins); ``body`` is the parsed JSON, ``None`` when there was
    no body, or :data:`NOT_JSON`; ``params`` holds the route's path parameters. ``default_headers`` (set by the
    route) adds the wire API's own headers to every answer when its head is sent, so times like
    ``openai-processing-ms`` are measured then.
    """

    __slots__ = ("method", "path", "query", "params", "headers", "body", "started", "answered", "request_id",
                 "default_headers", "_conn", "_writer")

    def __init__(self, conn: h11.Connection, writer: asyncio.StreamWriter, method: str, target: str,
                 headers: dict[str, str], body: bytes) -> None:
        self._conn = conn
        self._writer = writer
        self.method = method
        self.path, _, self.query = target.partition("?")
        self.params: dict[str, str] = {}
        self.headers = headers
        self.body: Any = _parse_json(body)
        self.started = time.monotonic()
        self.answered = False
        self.request_id = ""
        self.default_headers: Callable[[Exchange], Headers] = _no_headers

    @property
    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)

    def _head(self, status: int, content_type: str, headers: Headers, length: int | None) -> bytes:
        self.answered = True
        fields = [*self.default_headers(self), *headers, ("content-type", content_type)]
        if length is not None:
            fields.append(("content-length", str(length)))
        return self._conn.send(h11.Response(status_code=status, headers=fields, reason=_reason(status)))

    async def respond(self, status: int, payload: bytes, *, content_type: str = "application/json",
                      headers: Headers = (), hold_body: float = 0.0) -> None:
        """A whole answer with ``Content-Length``; ``hold_body`` seconds between the head and the body."""
        head = self._head(status, content_type, headers, len(payload))
        body = self._conn.send(h11.Data(data=payload)) + self._conn.send(h11.EndOfMessage())
        if hold_body:
            self._writer.write(head)
            await self._writer.drain()
            await asyncio.sleep(hold_body)
            self._writer.write(body)
        else:
            self._writer.write(head + body)
        await self._writer.drain()

    async def respond_json(self, status: int, obj: Any, *, headers: Headers = ()) -> None:
        await self.respond(status, orjson.dumps(obj), headers=headers)

    async def start_stream(self, content_type: str, *, headers: Headers = (), body: bytes = b"",
                           end: bool = False) -> None:
        """The head of a chunked 200 answer, with ``body`` bytes (and the end, when ``end``) in the same write."""
        data = self._head(200, content_type, [("cache-control", "no-cache"), *headers], None)
        if body:
            data += self._conn.send(h11.Data(data=body))
        if end:
            data += self._conn.send(h11.EndOfMessage())
        self._writer.write(data)
        await self._writer.drain()

    async def send_chunk(self, data: bytes) -> None:
        self._writer.write(self._conn.send(h11.Data(data=data)))
        await self._writer.drain()

    async def end_stream(self) -> None:
        self._writer.write(self._conn.send(h11.EndOfMessage()))
        await self._writer.drain()

    async def reset(self) -> None:
        """Abort the connection with a TCP reset, once what was written has reached the peer.

        Waiting for the socket's send queue to empty makes the reset land after the bytes already sent (the
        peer reads them, then gets ``ECONNRESET``) instead of racing them; the wait is bounded.
        """
        self.answered = True
        await self._writer.drain()
        sock = self._writer.get_extra_info("socket")
        if sock is not None:
            deadline = time.monotonic() + _DRAIN_WAIT_SECONDS
            while _unsent_bytes(sock) and time.monotonic() < deadline:
                await asyncio.sleep(0.001)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:  # already gone: the peer sees the connection end either way
                pass
        self._writer.transport.abort()
        raise ConnectionResetError("connection reset on purpose")


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b"Overloaded" if status == 529 else b""


def _unsent_bytes(sock: Any) -> int:
    """Bytes in the socket's send queue not yet acknowledged by the peer (Linux; 0 where unknown)."""
    try:
        import fcntl
        import termios

        return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
    except (ImportError, OSError, AttributeError, ValueError):
        return 0


def _no_headers(_exchange: Exchange) -> Headers:
    return ()


def _parse_json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return NOT_JSON


Handler = Callable[[Exchange], Awaitable[None]]
ErrorAnswer = Callable[[Exchange, int, str], Awaitable[None]]


async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, dispatch: Handler,
                           bad_request: ErrorAnswer) -> None:
    """Serve requests on one connection until the peer closes, framing fails or a handler resets it.

    ``dispatch`` answers each request; ``bad_request`` answers bytes that are not HTTP (status 400, 413 or 431),
    after which the connection closes.
    """
    # Accepted sockets of a proto-0 listener miss asyncio's automatic TCP_NODELAY; without it the small writes
    # of a stream stall ~40 ms each on delayed ACKs.
    peer = writer.get_extra_info("socket")
    if peer is not None and peer.family in (socket.AF_INET, socket.AF_INET6):
        peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD_BYTES)
    try:
        while True:
            try:
                request = await _next_request(conn, reader)
            except _BadRequest as exc:
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    exchange = Exchange(conn, writer, "?", "?", {}, b"")
                    await bad_request(exchange, exc.status, str(exc))
                return
            if request is None:
                return
            await dispatch(request.bind(conn, writer))
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()
    except (ConnectionError, asyncio.CancelledError):
        return
    except h11.LocalProtocolError:  # a handler answered twice or not at all: a bug, reported, connection closed
        _log.exception("fake server broke HTTP framing")
    finally:
        writer.close()


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Request:
    __slots__ = ("method", "target", "headers", "body")

    def __init__(self, method: str, target: str, headers: dict[str, str], body: bytes) -> None:
        self.method, self.target, self.headers, self.body = method, target, headers, body

    def bind(self, conn: h11.Connection, writer: asyncio.StreamWriter) -> Exchange:
        return Exchange(conn, writer, self.method, self.target, self.headers, self.body)


async def _next_request(conn: h11.Connection, reader: asyncio.StreamReader) -> _Request | None:
    """The next complete request (head and body), or None when the peer closed the connection."""
    head: h11.Request | None = None
    body = bytearray()
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise _BadRequest(exc.error_status_hint, f"malformed HTTP request: {exc}") from exc
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(_READ_SIZE))  # b"" at end of stream: h11 then says closed
        elif isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_BODY_BYTES:
                raise _BadRequest(413, f"request body over {MAX_BODY_BYTES} bytes")
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in head.headers}
            return _Request(head.method.decode("ascii"), head.target.decode("latin-1"), headers, bytes(body))
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None
