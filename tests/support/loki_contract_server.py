"""A stand-in for Loki that enforces Loki's push contract, for the fault tests the real Loki cannot serve.

It is not Loki: it stores nothing but what it accepted, and answers only pushes. But it refuses what Loki's
distributor refuses, with Loki's status codes and error texts:

- path ``/loki/api/v1/push`` (404 otherwise, also for the legacy ``/api/prom/push``), method POST (405);
- ``Content-Type: application/json`` (400 otherwise: this stand-in does not decode protobuf);
- ``Content-Encoding`` ``gzip`` or none (400 for others and for a body that does not gunzip);
- the JSON shape ``{"streams":[{"stream":{...},"values":[["<ns>","<line>",{metadata}?]]}]}``, at least one
  stream (422 otherwise); timestamps must be strings of nanoseconds (Loki rejects numbers); an entry with
  an empty line (or none) is dropped without an error, as Loki does;
- label names ``[a-zA-Z_][a-zA-Z0-9_]*``, at least one and at most 15 labels, values at most 2048 chars; a
  stream that breaks these is refused alone, the push's other streams are kept;
- structured metadata an object of string to string; names
  that are not label names are stored sanitised as Loki does (``1bad`` becomes ``key_1bad``);
- lines at most 256 KB, timestamps no older than ``reject_old_samples_max_age`` (1 week).

Like Loki 3, a structural error refuses the whole push; an entry-level error (line too long, too old, or the
``poison`` predicate) discards that entry, keeps the others and answers 400 with the errors grouped as Loki's
distributor groups them (``"2 errors like: …; 1 errors like: …"``). Entries out of order within a stream
are accepted, as Loki 3 does (unordered writes); ``tests/sinks/test_loki_differential.py`` sends the same
pushes here and to a real Loki and compares the answers.

It can be told to fail (500, always or every n-th push), stall (hold requests unanswered until released), answer 429 with
``Retry-After``, or go down (stop listening and cut open connections) and come back up on the same port.

>>> with LokiContractServer() as loki:
...     loki.url.startswith("http://127.0.0.1:")
True
"""

from __future__ import annotations

import gzip
import json
import re
import socket
import threading
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

__all__ = ["Attempt", "Entry", "LokiContractServer"]

PUSH_PATH = "/loki/api/v1/push"
MAX_LINE_BYTES = 256 * 1024
MAX_LABEL_NAMES = 15
MAX_LABEL_VALUE_CHARS = 2048
REJECT_OLD_SAMPLES_MAX_AGE_NS = 7 * 86400 * 10**9
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


class Entry(NamedTuple):
    labels: dict[str, str]
    ts_ns: int
    line: str
    metadata: dict[str, str]


class Attempt(NamedTuple):
    at: float  # time.monotonic() when the request arrived
    status: int  # what was answered (0: connection cut without an answer)
    headers: dict[str, str]


def _metadata_name(name: str) -> str:
    """Loki's sanitising of a structured metadata name: invalid characters become _, a leading digit key_."""
    name = re.sub(r"[^a-zA-Z0-9_]", "_", name)
    return "key_" + name if name[:1].isdigit() else name


class _StreamRejected(Exception):
    """A label error: Loki refuses that stream alone."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class _PushRejected(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def _labels_string(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _rfc3339(ts_ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts_ns // 10**9))


def _grouped(errors: list[tuple[str, str]]) -> list[str]:
    """Loki's distributor answer to (kind, text) errors: one error alone, else ``"<n> errors like: <first
    text>"`` per kind, joined by "; "."""
    if len(errors) <= 1:
        return [text for _, text in errors]
    kinds: dict[str, list[str]] = {}
    for kind, text in errors:
        kinds.setdefault(kind, []).append(text)
    return ["; ".join(f"{len(texts)} errors like: {texts[0]}" for texts in kinds.values())]


class LokiContractServer:
    """Loki's push endpoint on 127.0.0.1, validating every push; see the module docstring.

    ``structured_metadata=False`` answers as a Loki with ``allow_structured_metadata: false`` (and as Loki 2.x
    refuses metadata): entries carrying some are refused, the others kept.
    """

    def __init__(self, *, port: int = 0, structured_metadata: bool = True) -> None:
        self.structured_metadata = structured_metadata
        self.accepted: list[Entry] = []
        self.attempts: list[Attempt] = []
        self.errors: list[str] = []
        self._mode = "ok"
        self._fail_status = 500
        self._retry_after: str | None = None
        self._poison: Callable[[str], bool] | None = None
        self._every = 0
        self._pushes_seen = 0
        self._release = threading.Event()
        self._lock = threading.Condition()
        self._connections: set[socket.socket] = set()
        self._port = port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> LokiContractServer:
        owner = self

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        class Handler(_PushHandler):
            server_owner = owner

        self._httpd = Server(("127.0.0.1", self._port), Handler)
        self._port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="loki-contract-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self.down()

    def __enter__(self) -> LokiContractServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    # ---- behaviour switches --------------------------------------------------------------------------------

    def ok(self) -> None:
        """Answer normally (204 for a valid push)."""
        self._mode = "ok"

    def fail(self, status: int = 500) -> None:
        """Answer every push with ``status`` (a 5xx) and Loki-like error text."""
        self._mode, self._fail_status = "fail", status

    def fail_every(self, n: int, status: int = 500) -> None:
        """Answer every ``n``-th push with ``status`` and serve the others normally (a flaky Loki)."""
        self._mode, self._fail_status, self._every = "flaky", status, n

    def rate_limit(self, retry_after: str | None = "1") -> None:
        """Answer every push 429 with this ``Retry-After`` value (seconds or an HTTP date)."""
        self._mode, self._retry_after = "429", retry_after

    def stall(self) -> None:
        """Hold every push unanswered until ``release()`` (or ``stop()``)."""
        self._release.clear()
        self._mode = "stall"

    def release(self) -> None:
        """End a stall: held requests are then cut without an answer; later ones are served normally."""
        self._mode = "ok"
        self._release.set()

    def poison(self, predicate: Callable[[str], bool] | None) -> None:
        """Discard entries whose line matches ``predicate`` and answer 400, as Loki does for an invalid entry."""
        self._poison = predicate

    def down(self) -> None:
        """Stop listening (connection refused) and cut every open connection."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def up(self) -> None:
        """Listen again on the same port."""
        if self._httpd is None:
            self.start()

    # ---- inspection ----------------------------------------------------------------------------------------

    def lines(self) -> list[str]:
        with self._lock:
            return [e.line for e in self.accepted]

    def wait_for(self, condition: Callable[[LokiContractServer], bool], timeout: float) -> bool:
        """Block until ``condition(server)`` holds (re-checked after every request) or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not condition(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, 0.2))
            return True

    def _record(self, attempt: Attempt, entries: list[Entry], errors: list[str]) -> None:
        with self._lock:
            self.attempts.append(attempt)
            self.accepted.extend(entries)
            self.errors.extend(errors)
            self._lock.notify_all()

    # ---- validation ----------------------------------------------------------------------------------------

    def validate(self, headers: Any, raw: bytes) -> tuple[list[Entry], list[str]]:
        """Entries accepted and the entry-level errors; raises _PushRejected for a refused push."""
        ctype = (headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype != "application/json":
            raise _PushRejected(400, f"unsupported Content-Type {ctype!r}: this stand-in decodes application/json only")
        encoding = (headers.get("Content-Encoding") or "").strip().lower()
        if encoding == "gzip":
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError, zlib.error) as e:
                raise _PushRejected(400, f"gzip: invalid body: {e}") from None
        elif encoding not in ("", "identity"):
            raise _PushRejected(400, f'Content-Encoding "{encoding}" not supported')
        try:
            body = json.loads(raw)
        except ValueError as e:
            raise _PushRejected(400, f"loghttp.PushRequest: {e}") from None
        if not isinstance(body, dict) or not isinstance(body.get("streams"), list):
            raise _PushRejected(400, "loghttp.PushRequest: \"streams\" must be an array")
        if not body["streams"]:
            raise _PushRejected(422, "error at least one valid stream is required for ingestion")
        now = time.time_ns()
        accepted: list[Entry] = []
        errors: list[tuple[str, str]] = []
        for stream in body["streams"]:
            values = stream.get("values") if isinstance(stream, dict) else None
            if not isinstance(values, list):
                raise _PushRejected(400, "loghttp.PushRequest.Streams: \"values\" must be an array")
            entries = [self._check_entry(value) for value in values]
            try:
                labels = self._check_labels(stream)
            except _StreamRejected as e:  # like Loki: this stream is refused, the others are kept
                errors.append(("labels", e.text))
                continue
            shown = _labels_string(labels)
            for ts, line, meta in entries:
                if not line:
                    continue
                if meta and not self.structured_metadata:
                    errors.append(("metadata", f"stream '{shown}' includes structured metadata, but this feature is "
                                               "disallowed. Please see `limits_config.allow_structured_metadata` or "
                                               "contact your Loki administrator to enable it"))
                    continue
                if len(line.encode()) > MAX_LINE_BYTES:
                    kind, error = "line_too_long", (f"max entry size '{MAX_LINE_BYTES}' bytes exceeded for stream '{shown}' while adding "
                             f"an entry with length '{len(line.encode())}' bytes")
                elif ts < now - REJECT_OLD_SAMPLES_MAX_AGE_NS:
                    kind, error = "too_old", f"entry for stream '{shown}' has timestamp too old: {_rfc3339(ts)}"
                elif self._poison is not None and self._poison(line):
                    kind, error = "poison", f"entry for stream '{shown}' refused by the test's poison predicate"
                else:
                    accepted.append(Entry(labels, ts, line, meta))
                    continue
                errors.append((kind, error))
        return accepted, _grouped(errors)

    @staticmethod
    def _check_labels(stream: Any) -> dict[str, str]:
        labels = stream.get("stream") if isinstance(stream, dict) else None
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise _PushRejected(400, "loghttp.PushRequest.Streams: \"stream\" must be an object of strings")
        labels = {k: v for k, v in labels.items() if v != ""}
        if not labels:
            raise _StreamRejected("error at least one label pair is required per stream")
        shown = _labels_string(labels)
        for name, value in labels.items():
            if not _LABEL_NAME.match(name):
                raise _StreamRejected(f"couldn't parse labels: parse error: invalid label name {name!r}")
            if len(value) > MAX_LABEL_VALUE_CHARS:
                raise _StreamRejected(f"stream '{shown}' has label value too long: '{value}'")
        counted = len([name for name in labels if name != "service_name"])  # Loki 3 does not count it
        if counted > MAX_LABEL_NAMES:
            raise _StreamRejected(f"entry for stream '{shown}' has {counted} label names; limit {MAX_LABEL_NAMES}")
        return labels

    def _check_entry(self, value: Any) -> tuple[int, str, dict[str, str]]:
        if not isinstance(value, list) or len(value) not in (1, 2, 3):
            raise _PushRejected(400, "loghttp.PushRequest.Streams.Values: an entry must be [ts, line] or "
                                     "[ts, line, structured metadata]")
        ts, line = value[0], value[1] if len(value) > 1 else ""
        if not isinstance(ts, str) or not ts.isdigit():
            raise _PushRejected(400, f"loghttp.PushRequest.Streams.Values: timestamp must be a string of "
                                     f"nanoseconds, got {ts!r}")
        if not isinstance(line, str):
            raise _PushRejected(400, "loghttp.PushRequest.Streams.Values: line must be a string")
        meta: dict[str, str] = {}
        if len(value) == 3:
            meta = value[2]
            if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                     for k, v in meta.items()):
                raise _PushRejected(400, "loghttp.PushRequest.Streams.Values: structured metadata must be an "
                                         "object of string to string")
            meta = {_metadata_name(name): value for name, value in meta.items()}
        return int(ts), line, meta


class _PushHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Loki serves it
    server_owner: LokiContractServer

    def setup(self) -> None:
        super().setup()
        with self.server_owner._lock:
            self.server_owner._connections.add(self.connection)

    def finish(self) -> None:
        with self.server_owner._lock:
            self.server_owner._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read attempts/errors instead
        pass

    def _answer(self, status: int, text: str = "", headers: dict[str, str] | None = None) -> None:
        body = (text + "\n").encode() if text else b""
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(405 if self.path == PUSH_PATH else 404, "405 method not allowed" if self.path == PUSH_PATH
                     else "404 page not found")

    def do_POST(self) -> None:
        owner = self.server_owner
        arrived = time.monotonic()
        headers = {k: v for k, v in self.headers.items()}
        length = self.headers.get("Content-Length")
        if length is None:
            self._answer(411, "length required")
            return
        raw = self.rfile.read(int(length))
        if owner._mode == "stall":
            owner._release.wait()
            owner._record(Attempt(arrived, 0, headers), [], [])
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if self.path != PUSH_PATH:
            owner._record(Attempt(arrived, 404, headers), [], [])
            self._answer(404, "404 page not found")
            return
        with owner._lock:
            owner._pushes_seen += 1
            flaky = owner._mode == "flaky" and owner._pushes_seen % owner._every == 0
        if owner._mode == "fail" or flaky:
            owner._record(Attempt(arrived, owner._fail_status, headers), [], [])
            self._answer(owner._fail_status, "rpc error: code = Unavailable desc = ingester unavailable")
            return
        if owner._mode == "429":
            extra = {"Retry-After": owner._retry_after} if owner._retry_after else {}
            owner._record(Attempt(arrived, 429, headers), [], [])
            self._answer(429, "Ingestion rate limit exceeded for user fake (limit: 4194304 bytes/sec) while "
                              "attempting to ingest lines, reduce log volume", extra)
            return
        try:
            entries, errors = owner.validate(self.headers, raw)
        except _PushRejected as e:
            owner._record(Attempt(arrived, e.status, headers), [], [e.text])
            self._answer(e.status, e.text)
            return
        status = 400 if errors else 204
        owner._record(Attempt(arrived, status, headers), entries, errors)
        self._answer(status, "\n".join(errors))
