"""Loki's push API on the wire: stream labels, the JSON body, and one HTTP POST.

Kept apart from the sink's queueing so that the encoding can be measured on its own (see
``benchmarks/loki_shipping.py``) and so that the shipper's cost per batch is easy to see: one Python loop over
the records, one ``orjson.dumps``, one ``zlib.compress`` and one ``sendall``. Each of those is a single call
into C; that matters because every time the shipper thread gives up the GIL (I/O, compression) a CPU-bound
application thread keeps it for a whole switch interval (5 ms by default) before the shipper runs again, so
a shipper that makes many small calls (a streaming gzip writer, one write per record, a chunked body)
crawls while the application is busy.

>>> enc = PushEncoder({"service_name": "checkout", "env": "prod"}, structured_metadata=True, gzip_level=1)
>>> body = enc.encode_json([Record(1, b'{"a":1}', "call", "info", "openai", "gpt-4o", "t" * 32, "s" * 16,
...                                "c" * 32, None, None)])
>>> body[:60]
b'{"streams":[{"stream":{"service_name":"checkout","env":"prod'
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import os
import re
import socket
import ssl
import time
import urllib.parse
import urllib.request
import zlib
from collections.abc import Mapping, Sequence
from typing import NamedTuple, Protocol

import orjson

try:  # optional: Intel ISA-L's deflate, about 3x faster than zlib at level 1 with a better ratio
    from isal import isal_zlib as _isal_zlib
except ImportError:  # pragma: no cover - depends on the environment
    _isal_zlib = None

from ..config import Config, ConfigError
from ..record import Record

__all__ = [
    "COMPRESSOR",
    "MAX_LABEL_NAMES",
    "MAX_LABEL_VALUE_CHARS",
    "MAX_LINE_BYTES",
    "PUSH_PATH",
    "HTTPTransport",
    "PushEncoder",
    "PushResponse",
    "PushTransport",
    "parse_retry_after",
    "refused_entries",
    "stream_labels",
]

PUSH_PATH = "/loki/api/v1/push"
#: Loki's default ``max_line_size`` (256 KB); longer entries are refused by the distributor.
MAX_LINE_BYTES = 256 * 1024
#: Loki's default ``max_label_names_per_series``.
MAX_LABEL_NAMES = 15
#: Loki's default ``max_label_value_length``.
MAX_LABEL_VALUE_CHARS = 2048
#: Which deflate implementation compresses push bodies: "isal" when the optional ``isal`` package is
#: installed, else the standard library's "zlib". Both write the same gzip format.
COMPRESSOR = "isal" if _isal_zlib is not None else "zlib"
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
#: Labels the sink sets itself; a static label may not reuse these names.
RESERVED_LABELS = ("service_name", "env", "provider", "level")


def stream_labels(config: Config) -> dict[str, str]:
    """The labels shared by every stream (service_name, env, static labels), validated like Loki would.

    ``provider`` and ``level`` come from each record. Raises ``ConfigError`` naming the offending label.
    """
    labels = {"service_name": config.service, "env": config.env}
    for name, value in dict(config.loki_labels).items():
        if not isinstance(name, str) or not LABEL_NAME.match(name):
            raise ConfigError(f"loki_labels: {name!r} is not a valid Loki label name ([a-zA-Z_][a-zA-Z0-9_]*) "
                              "(argument loki_labels or LLMMETRICS_LOKI_LABELS)")
        if name in RESERVED_LABELS:
            raise ConfigError(f"loki_labels: {name!r} is set by llmmetrics itself and cannot be overridden "
                              "(argument loki_labels or LLMMETRICS_LOKI_LABELS)")
        labels[name] = value
    for name, value in labels.items():
        if not isinstance(value, str) or not value:
            raise ConfigError(f"Loki label {name!r} needs a non-empty string value, got {value!r}")
        if len(value) > MAX_LABEL_VALUE_CHARS:
            raise ConfigError(f"Loki label {name!r} is {len(value)} characters long; Loki accepts at most "
                              f"{MAX_LABEL_VALUE_CHARS}")
    if len(labels) + 2 > MAX_LABEL_NAMES:  # + provider, level
        raise ConfigError(f"Loki streams would carry {len(labels) + 2} labels; Loki accepts at most "
                          f"{MAX_LABEL_NAMES} (argument loki_labels or LLMMETRICS_LOKI_LABELS)")
    return labels


def _ts(record: Record) -> int:
    return record.ts_ns


class PushEncoder:
    """Turns a batch of records into one gzip-compressed push body.

    Records are grouped into streams by (provider, level) and sorted by timestamp within each stream, as
    Loki requires of the entries of one stream in one push. ``gzip_level`` 1 is the default because
    compression is most of a push's CPU cost; ISA-L (levels 0-3) is used when installed, unless
    ``compressor="zlib"``.
    """

    def __init__(self, base_labels: Mapping[str, str], *, structured_metadata: bool, gzip_level: int = 1,
                 compressor: str = COMPRESSOR) -> None:
        self._base = dict(base_labels)
        self._structured_metadata = structured_metadata
        self._level = gzip_level
        use_isal = compressor == "isal" and _isal_zlib is not None and gzip_level <= 3
        self.compressor = "isal" if use_isal else "zlib"
        self._compress = _isal_zlib.compress if use_isal else zlib.compress  # type: ignore[union-attr]
        self._stream_labels: dict[tuple[str, str], dict[str, str]] = {}

    def _labels(self, provider: str, level: str) -> dict[str, str]:
        labels = self._stream_labels.get((provider, level))
        if labels is None:
            labels = dict(self._base)
            # an empty label value means "no label" to Loki; keep the stream addressable instead
            labels["provider"] = (provider or "unknown")[:MAX_LABEL_VALUE_CHARS]
            labels["level"] = (level or "info")[:MAX_LABEL_VALUE_CHARS]
            if len(self._stream_labels) < 1000:
                self._stream_labels[(provider, level)] = labels
        return labels

    def encode_json(self, records: Sequence[Record]) -> bytes:
        """The uncompressed JSON body."""
        streams: dict[tuple[str, str], list[Record]] = {}
        for r in records:
            key = (r.provider, r.level)
            group = streams.get(key)
            if group is None:
                streams[key] = [r]
            else:
                group.append(r)
        out = []
        for (provider, level), group in streams.items():
            group.sort(key=_ts)
            if self._structured_metadata:
                values = [[str(r.ts_ns), r.line.decode("utf-8", "replace"), _metadata(r)] for r in group]
            else:
                values = [[str(r.ts_ns), r.line.decode("utf-8", "replace")] for r in group]
            out.append({"stream": self._labels(provider, level), "values": values})
        return orjson.dumps({"streams": out})

    def encode(self, records: Sequence[Record]) -> bytes:
        """The gzip-compressed JSON body (one compress call; ``wbits=31`` writes the gzip format)."""
        return self._compress(self.encode_json(records), self._level, 31)

    def stream_sizes(self, records: Sequence[Record]) -> list[tuple[dict[str, str], int]]:
        """(labels, entry count) of each stream ``encode_json`` makes of ``records``, to read Loki's refusals."""
        counts: dict[tuple[str, str], int] = {}
        for r in records:
            key = (r.provider, r.level)
            counts[key] = counts.get(key, 0) + 1
        return [(self._labels(provider, level), n) for (provider, level), n in counts.items()]


def _metadata(r: Record) -> dict[str, str]:
    meta = {"trace_id": r.trace_id, "span_id": r.span_id}
    if r.call_id:
        meta["call_id"] = r.call_id
    if r.user_id:
        meta["user_id"] = r.user_id if type(r.user_id) is str else str(r.user_id)
    if r.request_id:
        meta["request_id"] = r.request_id if type(r.request_id) is str else str(r.request_id)
    return meta


class PushResponse(NamedTuple):
    status: int
    retry_after: float | None  # seconds, from a Retry-After header
    text: str  # the response body (at most _MAX_ERROR_TEXT characters), for reading refusals and for logs


#: Loki's refusal texts (pkg/validation, pkg/ingester) → the sink's drop reason
_REFUSAL_REASONS = (
    ("timestamp too old", "too_old"),
    ("max entry size", "line_too_long"),
    ("too far behind", "out_of_order"),
    ("out of order", "out_of_order"),
    ("includes structured metadata", "rejected"),  # a Loki (or tenant) with allow_structured_metadata: false
    *((fragment, "invalid_labels") for fragment in ("label names; limit", "label value too long",
                                                    "label name too long", "parse labels", "invalid label",
                                                    "duplicate label", "at least one label pair")),
)
_GROUP = re.compile(r"(?:^|; )(\d+) errors like: ")
_INGESTER_TOTAL = re.compile(r"total ignored: (\d+) out of \d+ for stream: (\{.*\})")
_LABEL_LIMIT = re.compile(r"label names; limit (\d+)")
_LABEL_PAIR = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _reason(message: str) -> str | None:
    lowered = message.lower()
    for fragment, reason in _REFUSAL_REASONS:
        if fragment in lowered:
            return reason
    return None


def refused_entries(text: str, streams: Sequence[tuple[Mapping[str, str], int]]) -> dict[str, int]:
    """How many entries of a push Loki refused, by drop reason, read from its 400 answer.

    Loki keeps the valid entries of a push and answers 400 naming the others: its distributor groups
    entry errors as ``"<n> errors like: <text>; <m> errors like: <text>"`` (one error: the text alone), and
    refuses a whole stream for a label error (one error per stream); its ingester ends with ``"total
    ignored: <n> out of <m> for stream: {…}"`` per stream. An answer that says neither (a proxy's 400, an
    unknown format) counts every entry as refused (``rejected``), as nothing says which were kept.
    """
    total = sum(n for _, n in streams)
    refused: dict[str, int] = {}

    def add(reason: str, n: int) -> None:
        refused[reason] = refused.get(reason, 0) + n

    ingester = _INGESTER_TOTAL.findall(text)
    for count, _ in ingester:
        add(_reason(text) or "rejected", int(count))
    if not ingester:
        body = text.strip()
        if _GROUP.match(body):
            parts = _GROUP.split(body)[1:]
            groups = [(int(count), message) for count, message in zip(parts[::2], parts[1::2])]
        elif _reason(body) is not None or body.startswith(("entry for stream", "entry with timestamp")):
            groups = [(1, body)]  # one error: a known kind, or Loki's wording for one refused entry
        else:
            groups = []
        for count, message in groups:
            reason = _reason(message) or "rejected"
            if reason == "invalid_labels":
                add(reason, _entries_of_refused_streams(message, count, streams))
            else:
                add(reason, count)
    if not refused or sum(refused.values()) > total:
        return {"rejected": total}
    return refused


def _entries_of_refused_streams(message: str, errors: int, streams: Sequence[tuple[Mapping[str, str], int]]) -> int:
    """Entries of the streams a label error refused: those over the label limit it names, else ``errors``
    streams, starting with the one the message shows (a grouped error shows only its first stream)."""
    limit = _LABEL_LIMIT.search(message)
    if limit is not None:  # Loki 3 does not count service_name, which it may add itself
        over = [n for labels, n in streams if len([k for k in labels if k != "service_name"]) > int(limit.group(1))]
        if len(over) == errors:
            return sum(over)
    shown = dict(_LABEL_PAIR.findall(message))
    ordered = sorted(streams, key=lambda stream: not all(shown.get(k) == v for k, v in stream[0].items()))
    return sum(n for _, n in ordered[:errors])


class PushTransport(Protocol):
    """Sends compressed push bodies; raises ``OSError`` (or ``http.client.HTTPException``) when no answer.

    ``send`` and ``receive`` are separate so the sink can encode the next batch while Loki works on this one.
    """

    def send(self, body: bytes) -> None: ...

    def receive(self) -> PushResponse: ...

    def post(self, body: bytes) -> PushResponse: ...

    def abort(self) -> None:
        """Called from another thread: make a blocked ``send``/``receive`` fail now (close() must never hang)."""

    def reset_after_fork(self) -> None:
        """In a forked child: forget the parent's connection without touching it."""


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date; None if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


#: Loki lists each refused entry of a push in its answer; this much of it is kept to count them.
_MAX_ERROR_TEXT = 1 << 20


class HTTPTransport:
    """HTTP/1.1 POST to Loki over one persistent connection (``http.client``, no extra dependency).

    ``http.client`` sends the headers and a ``bytes`` body in one ``sendall`` and reads the status line and
    headers from one buffered ``recv``, so a push costs a handful of GIL hand-offs whatever its size.

    It takes the settings the Loki reads (``requests``) take, read once when the sink is configured: the proxy
    for the URL's scheme from ``HTTPS_PROXY``/``HTTP_PROXY`` unless ``NO_PROXY`` names the host (an http://
    Loki is reached with absolute-URI requests to the proxy, an https:// one through a ``CONNECT`` tunnel;
    ``user:password@`` in the proxy URL becomes ``Proxy-Authorization``), and TLS verified against
    ``ca_file``, else ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE``, else the system's roots.
    """

    def __init__(self, url: str, *, timeout: float, tenant: str | None = None, username: str | None = None,
                 password: str | None = None, bearer_token: str | None = None, ca_file: str | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"loki_url must be an http:// or https:// URL, got {redact_url(url)!r} "
                              "(argument loki_url or LLMMETRICS_LOKI_URL)")
        environ = os.environ if environ is None else environ
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        path = parts.path.rstrip("/")
        self.path = path if path.endswith(PUSH_PATH) else path + PUSH_PATH
        self._context: ssl.SSLContext | None = None
        if self._https:
            cafile = ca_file or environ.get("REQUESTS_CA_BUNDLE") or environ.get("CURL_CA_BUNDLE") or None
            try:
                self._context = ssl.create_default_context(cafile=cafile)
            except (OSError, ssl.SSLError) as e:
                raise ConfigError(f"loki_ca_file: cannot load the CA bundle {cafile!r}: {e} (argument loki_ca_file, "
                                  "LLMMETRICS_LOKI_CA_FILE or REQUESTS_CA_BUNDLE)") from None
        self._proxy = _proxy_for(parts.scheme, self._host, environ)
        self._proxy_headers: dict[str, str] = {}
        if self._proxy is not None:
            if self._proxy.username is not None:
                token = base64.b64encode(f"{urllib.parse.unquote(self._proxy.username)}:"
                                         f"{urllib.parse.unquote(self._proxy.password or '')}".encode()).decode()
                self._proxy_headers["Proxy-Authorization"] = "Basic " + token
            if not self._https:  # a plain-HTTP proxy is sent the absolute URI
                self.path = f"http://{self._host}:{self._port}{self.path}"
        self.timeout = timeout
        self.headers = {"Content-Type": "application/json", "Content-Encoding": "gzip", "User-Agent": "llmmetrics"}
        username = username or (urllib.parse.unquote(parts.username) if parts.username else None)
        password = password or (urllib.parse.unquote(parts.password) if parts.password else None)
        if bearer_token:
            self.headers["Authorization"] = "Bearer " + bearer_token
        elif username is not None:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            self.headers["Authorization"] = "Basic " + token
        if tenant:
            self.headers["X-Scope-OrgID"] = tenant
        #: The URL without credentials, safe to log.
        self.display_url = redact_url(url)
        self._conn: http.client.HTTPConnection | None = None
        self._pending = b""
        self._reused = False

    @classmethod
    def from_config(cls, config: Config) -> HTTPTransport:
        if not config.loki_url:
            raise ConfigError("loki_url is required for the Loki sink (argument loki_url or LLMMETRICS_LOKI_URL)")
        return cls(config.loki_url, timeout=config.loki_timeout_seconds, tenant=config.loki_tenant,
                   username=config.loki_username, password=config.loki_password,
                   bearer_token=config.loki_bearer_token, ca_file=config.loki_ca_file)

    def _connect(self) -> http.client.HTTPConnection:
        proxy = self._proxy
        host, port = (proxy.hostname, proxy.port or 80) if proxy is not None else (self._host, self._port)
        if self._https:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                host, port, timeout=self.timeout, context=self._context)
            if proxy is not None:
                conn.set_tunnel(self._host, self._port, headers=self._proxy_headers)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._conn = conn
        return conn

    def send(self, body: bytes) -> None:
        """Send one push request (headers, then the body in one ``sendall``); the answer is read by receive()."""
        self._pending = body
        self._reused = self._conn is not None
        try:
            self._send(self._conn or self._connect(), body)
        except (OSError, http.client.HTTPException):
            self.close()
            if not self._reused:
                raise
            self._resend()

    def receive(self) -> PushResponse:
        """Read the answer to the request sent last."""
        try:
            return self._receive()
        except (OSError, http.client.HTTPException):
            self.close()
            if not self._reused:
                raise
        # an idle keep-alive connection the server had closed: one immediate resend on a fresh one
        self._resend()
        try:
            return self._receive()
        except (OSError, http.client.HTTPException):
            self.close()
            raise

    def post(self, body: bytes) -> PushResponse:
        self.send(body)
        return self.receive()

    def _resend(self) -> None:
        self._reused = False
        try:
            self._send(self._connect(), self._pending)
        except (OSError, http.client.HTTPException):
            self.close()
            raise

    def _send(self, conn: http.client.HTTPConnection, body: bytes) -> None:
        if self._proxy is not None and not self._https:
            conn.request("POST", self.path, body, {**self.headers, **self._proxy_headers})
        else:
            conn.request("POST", self.path, body, self.headers)

    def _receive(self) -> PushResponse:
        conn = self._conn
        if conn is None:
            raise ConnectionError("connection closed before the answer")
        resp = conn.getresponse()
        text = resp.read()
        if resp.will_close:
            self.close()
        retry_after = parse_retry_after(resp.getheader("Retry-After")) if resp.status >= 400 else None
        return PushResponse(resp.status, retry_after, text[:_MAX_ERROR_TEXT].decode("utf-8", "replace").strip())

    def abort(self) -> None:
        conn = self._conn
        sock = conn.sock if conn is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def reset_after_fork(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and conn.sock is not None:
            # close our copy of the descriptor only: shutdown() would cut the parent's connection too
            conn.sock.close()


def _proxy_for(scheme: str, host: str, environ: Mapping[str, str]) -> urllib.parse.SplitResult | None:
    """The proxy ``requests`` would use for ``scheme://host`` by the same variables (lower case first)."""
    proxies = {name.lower()[:-6]: value for name, value in environ.items() if name.lower().endswith("_proxy") and value}
    proxies.update({name[:-6]: value for name, value in environ.items() if name.endswith("_proxy") and value})
    url = proxies.get(scheme) or proxies.get("all")
    if not url or urllib.request.proxy_bypass_environment(host, proxies):
        return None
    parts = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
    if parts.scheme != "http" or not parts.hostname:
        raise ConfigError(f"{scheme.upper()}_PROXY: the Loki sink reaches Loki through an http:// proxy, got "
                          f"{redact_url(url)!r}")
    return parts


def redact_url(url: str) -> str:
    """The URL with any ``user:password@`` removed, for logs and errors."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
