"""The fake LLM server's lifecycle: bind, serve from one asyncio loop in a daemon thread, route, record, stop.

Waiting — latency, stalls — is an ``asyncio.sleep``, so thousands of slow requests cost no threads and
:meth:`FakeLLMServer.stop` ends them at once. The wire APIs it serves are the modules in :data:`WIRE_APIS`;
each adds its routes with ``register(routes, workload)``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from . import anthropic_messages, bedrock, openai_api, openai_chat, openai_embeddings, openai_models, openai_responses
from .http import NOT_JSON, Exchange, serve_connection
from .routes import Routes
from .workload import FaultPlan, LatencyModel, Workload

__all__ = ["FakeLLMServer", "RecordedRequest", "WIRE_APIS"]

_log = logging.getLogger(__name__)

WIRE_APIS: tuple[ModuleType, ...] = (openai_chat, openai_responses, openai_embeddings, openai_models,
                                     anthropic_messages, bedrock)
"""The modules whose routes every server serves; a new wire API is one more module here."""

_SECRET_HEADERS = ("authorization", "x-api-key", "x-amz-security-token")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it; credentials are redacted, header names are lowercase."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    received_at: float = field(repr=False)


class FakeLLMServer:
    """An OpenAI- and Anthropic-compatible HTTP server on 127.0.0.1 for demos and tests; deterministic when seeded.

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
        self._workload = Workload(latency=latency or LatencyModel.none(), faults=faults or FaultPlan(), seed=seed,
                                  answer_tokens=answer_tokens, embedding_dimensions=embedding_dimensions)
        self._host = host
        self._port = port
        self._recorded: collections.deque[RecordedRequest] = collections.deque(maxlen=max_recorded_requests)
        self._recorded_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._socket: socket.socket | None = None
        self._bound_port: int | None = None
        self._routes = Routes()
        for wire_api in WIRE_APIS:
            wire_api.register(self._routes, self._workload)

    # -- lifecycle -------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (known once started)."""
        if self._bound_port is None:
            raise RuntimeError("FakeLLMServer is not started; call start() first")
        return self._bound_port

    @property
    def url(self) -> str:
        """The server's root, ``http://<host>:<port>``: the ``base_url`` of Anthropic's and Bedrock's clients."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://<host>:<port>/v1``: the ``base_url`` of OpenAI's client (and of ``AnthropicVertex``)."""
        return self.url + "/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the most recent requests received, oldest first (bounded by ``max_recorded_requests``)."""
        with self._recorded_lock:
            return list(self._recorded)

    def set_faults(self, faults: FaultPlan) -> None:
        """Replace the fault plan; requests that arrive afterwards use it (safe from any thread)."""
        if not isinstance(faults, FaultPlan):
            raise TypeError(f"set_faults expects a FaultPlan, got {type(faults).__name__}")
        self._workload.faults = faults

    def start(self) -> FakeLLMServer:
        """Bind (port 0 picks a free port) and serve from a daemon thread; returns self.

        Raises ``OSError`` (``errno.EADDRINUSE``) when the port is taken.
        """
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
        server = await asyncio.start_server(self._on_connection, sock=sock)
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
        try:
            await serve_connection(reader, writer, self._dispatch, self._bad_request)
        finally:
            self._connections.discard(task)

    # -- requests --------------------------------------------------------------------------------------

    async def _dispatch(self, exchange: Exchange) -> None:
        self._record(exchange)
        found = self._routes.match(exchange.method, exchange.path)
        if found is None:
            exchange.default_headers = openai_api.DIALECT.headers
            await openai_api.send_error(exchange, 404, f"Invalid URL ({exchange.method} {exchange.path})",
                                        type="invalid_request_error")
            return
        route, exchange.params = found
        exchange.default_headers = route.dialect.headers
        try:
            await route.handler(exchange)
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception as exc:  # a bug here must reach the client as an answer, not a hang
            _log.exception("fake server failed on %s %s", exchange.method, exchange.path)
            if not exchange.answered:
                body = route.dialect.error_body(exchange, 500, f"fake server failed: {type(exc).__name__}: {exc}")
                await exchange.respond_json(500, body)

    @staticmethod
    async def _bad_request(exchange: Exchange, status: int, message: str) -> None:
        exchange.default_headers = openai_api.DIALECT.headers
        await openai_api.send_error(exchange, status, message, type="invalid_request_error")

    def _record(self, exchange: Exchange) -> None:
        if self._recorded.maxlen == 0:
            return
        headers = dict(exchange.headers)
        for name in _SECRET_HEADERS:
            if name in headers:
                scheme, _, rest = headers[name].partition(" ")
                headers[name] = f"{scheme} <redacted>" if rest else "<redacted>"
        body = None if exchange.body is NOT_JSON else exchange.body
        record = RecordedRequest(exchange.method, exchange.path, headers, body, time.time())
        with self._recorded_lock:
            self._recorded.append(record)
