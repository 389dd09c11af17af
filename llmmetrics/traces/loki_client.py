"""Page through Loki's ``/loki/api/v1/query_range`` until enough log entries are read.

Loki caps one answer at ``limit`` entries (and a server-side maximum, 5000 by default), so a longer answer
is read page by page, moving ``end`` (direction ``backward``, newest first) or ``start`` (``forward``) to
the timestamp of the last entry read. Several entries can share one nanosecond timestamp and a page can
end in the middle of them, so the next page starts *at* that timestamp again (``end`` is exclusive,
hence ``+1``) and the entries already read at it are skipped: nothing lost, nothing twice.

Requests ask for ``X-Loki-Response-Encoding-Flags: categorize-labels`` so that Loki 3 returns each entry's
structured metadata in a third element (``[ts, line, {"structuredMetadata": {...}, "parsed": {...}}]``)
instead of folding it into the stream labels; answers from older servers (two-element entries) decode too.

HTTP is a ``requests.Session``: one pooled connection reused across pages, a timeout on every request,
proxies from the environment (``HTTPS_PROXY``/``HTTP_PROXY``, ``NO_PROXY``), TLS verified against
``ca_file`` when given, else ``REQUESTS_CA_BUNDLE``, else the system's roots, and a bounded retry of
429 and 5xx answers (``urllib3.util.Retry``: ``retries`` attempts, exponential backoff from 0.5 s, honouring
``Retry-After``). Reads are idempotent GETs, so retrying them is always safe.

>>> with LokiClient("http://127.0.0.1:3100", tenant="team-a") as client:               # doctest: +SKIP
...     lines = [e.line for e in client.entries('{service_name="llm-app"}', start_ns=0,
...                                             end_ns=time.time_ns(), limit=100)]
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any

import orjson
import requests

from ..config import Config
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

__all__ = ["LokiClient", "LokiEntry", "LokiError", "LokiPage", "decode_query_range"]

#: Loki's default ``max_entries_limit_per_query``; a page never asks for more.
MAX_PAGE_SIZE = 5000
#: Answers retried (after a backoff) before the error is reported.
RETRY_STATUSES = (429, 500, 502, 503, 504)


class LokiError(RuntimeError):
    """Loki could not be reached or refused the query; the message carries Loki's own explanation."""


@dataclasses.dataclass(frozen=True)
class LokiEntry:
    """One log entry of a streams answer."""

    ts_ns: int
    line: str
    stream: Mapping[str, str]
    structured_metadata: Mapping[str, str]

    @property
    def key(self) -> tuple[int, str, tuple[tuple[str, str], ...]]:
        """What identifies an entry across pages (Loki itself drops same-timestamp, same-line duplicates)."""
        return (self.ts_ns, self.line, tuple(sorted(self.stream.items())))


@dataclasses.dataclass(frozen=True)
class LokiPage:
    """One decoded query_range answer: entries in the requested direction plus Loki's ``stats`` block."""

    entries: list[LokiEntry]
    stats: Mapping[str, Any]


def decode_query_range(body: bytes, *, direction: str = "backward") -> LokiPage:
    """Decode a query_range JSON answer of ``resultType: streams``; raise :class:`LokiError` for anything else."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise LokiError(f"Loki answered with invalid JSON ({error}): {body[:200]!r}") from None
    if not isinstance(answer, dict) or answer.get("status") != "success":
        message = answer.get("error") if isinstance(answer, dict) else None
        raise LokiError(f"Loki query failed: {message or body[:300]!r}")
    data = answer.get("data") or {}
    if data.get("resultType") != "streams":
        raise LokiError(f"expected a log query answer (resultType streams), got {data.get('resultType')!r}")
    entries: list[LokiEntry] = []
    for stream in data.get("result") or []:
        labels = stream.get("stream") or {}
        for value in stream.get("values") or []:
            if not isinstance(value, list) or len(value) < 2:
                raise LokiError(f"unexpected entry shape in Loki answer: {value!r:.200}")
            categorized = value[2] if len(value) > 2 and isinstance(value[2], dict) else {}
            entries.append(
                LokiEntry(
                    ts_ns=int(value[0]),
                    line=value[1],
                    stream=labels,
                    structured_metadata=categorized.get("structuredMetadata") or {},
                )
            )
    # Loki orders entries within each stream; across streams the merge is ours to do.
    entries.sort(key=lambda e: e.ts_ns, reverse=direction == "backward")
    return LokiPage(entries=entries, stats=data.get("stats") or {})


class _Bearer(requests.auth.AuthBase):
    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


class LokiClient:
    """A read-only Loki HTTP client on a ``requests.Session``: tenant header, basic or bearer auth, TLS, proxies.

    Close it (or use it as a context manager) to release its pooled connection.
    """

    def __init__(
        self,
        url: str,
        *,
        tenant: str | None = None,
        username: str | None = None,
        password: str | None = None,
        bearer_token: str | None = None,
        ca_file: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        page_size: int = 1000,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.username is not None:  # http://user:pass@host: use as basic auth, keep out of messages
            username = username if username is not None else urllib.parse.unquote(parts.username)
            password = password if password is not None else urllib.parse.unquote(parts.password or "")
            parts = parts._replace(netloc=(parts.hostname or "") + (f":{parts.port}" if parts.port else ""))
        self.base_url = urllib.parse.urlunsplit(parts).rstrip("/")
        self.timeout = timeout
        self.page_size = min(page_size, MAX_PAGE_SIZE)
        # None: requests picks REQUESTS_CA_BUNDLE (or CURL_CA_BUNDLE) from the environment, else certifi's roots
        self._verify: str | None = ca_file
        self.session = requests.Session()
        self.session.headers.update({
            "Accept": "application/json",
            "X-Loki-Response-Encoding-Flags": "categorize-labels",
            "User-Agent": "llmmetrics-traces",
        })
        if tenant:
            self.session.headers["X-Scope-OrgID"] = tenant
        # set explicitly, so that a ~/.netrc entry for the host cannot replace them
        if bearer_token:
            self.session.auth = _Bearer(bearer_token)
        elif username is not None:
            self.session.auth = requests.auth.HTTPBasicAuth(username, password or "")
        # connection refused and 429/5xx are retried; a TLS failure (other) or a lost answer (read) is not
        retry = Retry(total=retries, connect=retries, read=0, other=0, status=retries, backoff_factor=0.5,
                      backoff_max=10.0, status_forcelist=RETRY_STATUSES, allowed_methods={"GET"},
                      respect_retry_after_header=True, raise_on_status=False)
        adapter = HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=1)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        #: what was read, for the command's footer: pages fetched, bytes Loki scanned, Loki's execution time
        self.pages = 0
        self.bytes_processed = 0
        self.exec_time_seconds = 0.0

    @classmethod
    def from_config(cls, config: Config, *, url: str | None = None, tenant: str | None = None,
                    ca_file: str | None = None, **options: Any) -> LokiClient:
        """A client for the Loki the configuration names (``LLMMETRICS_LOKI_*``); arguments win over it."""
        target = url or config.loki_url
        if not target:
            raise LokiError("no Loki URL: pass one or set LLMMETRICS_LOKI_URL")
        return cls(target, tenant=tenant or config.loki_tenant, username=config.loki_username,
                   password=config.loki_password, bearer_token=config.loki_bearer_token,
                   ca_file=ca_file or config.loki_ca_file, timeout=config.loki_timeout_seconds, **options)

    def __enter__(self) -> LokiClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

    def get(self, path: str, params: Mapping[str, str]) -> bytes:
        """GET ``path`` under the base URL; the body of a 2xx answer, else :class:`LokiError` with Loki's text."""
        try:
            response = self.session.get(f"{self.base_url}{path}", params=params, timeout=self.timeout,
                                        verify=self._verify)
        except requests.exceptions.SSLError as error:
            raise LokiError(f"TLS with Loki at {self.base_url} failed: {_reason(error)} (a private CA: "
                            "--loki-ca-file, LLMMETRICS_LOKI_CA_FILE or REQUESTS_CA_BUNDLE)") from None
        except requests.exceptions.ProxyError as error:
            raise LokiError(f"the proxy for Loki at {self.base_url} failed: {_reason(error)} (HTTPS_PROXY, "
                            "HTTP_PROXY; NO_PROXY to bypass it)") from None
        except requests.exceptions.RequestException as error:
            raise LokiError(f"cannot reach Loki at {self.base_url}: {_reason(error)}") from None
        if response.status_code >= 400:
            detail = response.content[:500].decode("utf-8", "replace").strip()
            raise LokiError(f"Loki answered HTTP {response.status_code} for {path}: {detail}")
        return response.content

    def query_range(self, logql: str, *, start_ns: int, end_ns: int, limit: int, direction: str) -> LokiPage:
        """One request: entries with ``start_ns <= ts < end_ns``, at most ``limit``, in ``direction`` order."""
        params = {"query": logql, "start": str(start_ns), "end": str(end_ns), "limit": str(limit),
                  "direction": direction}
        try:
            body = self.get("/loki/api/v1/query_range", params)
        except LokiError as error:
            raise LokiError(f"{error} (query {logql!r})") from None
        page = decode_query_range(body, direction=direction)
        self.pages += 1
        summary = page.stats.get("summary") or {}
        self.bytes_processed += int(summary.get("totalBytesProcessed") or 0)
        self.exec_time_seconds += float(summary.get("execTime") or 0.0)
        return page

    def entries(
        self,
        logql: str,
        *,
        start_ns: int,
        end_ns: int,
        limit: int,
        direction: str = "backward",
    ) -> Iterator[LokiEntry]:
        """Yield up to ``limit`` entries in ``direction`` order, paging across the whole ``[start, end)`` range."""
        if direction not in ("backward", "forward"):
            raise ValueError(f"direction must be backward or forward, not {direction!r}")
        returned = 0
        boundary_ts: int | None = None
        boundary_keys: set[tuple[int, str, tuple[tuple[str, str], ...]]] = set()
        floor = 0  # grows geometrically while pages stay inside one timestamp
        while returned < limit and start_ns < end_ns:
            if len(boundary_keys) >= MAX_PAGE_SIZE:
                raise LokiError(
                    f"{len(boundary_keys)} entries share the timestamp {boundary_ts}; a page of at most "
                    f"{MAX_PAGE_SIZE} cannot get past them"
                )
            # The entries already read at the boundary timestamp come back first and are skipped, so ask
            # for at least one more than them.
            wanted = min(self.page_size, limit - returned + len(boundary_keys))
            request_size = min(MAX_PAGE_SIZE, max(wanted, len(boundary_keys) + 1, floor))
            page = self.query_range(logql, start_ns=start_ns, end_ns=end_ns, limit=request_size, direction=direction)
            fresh = 0
            for entry in page.entries:
                if entry.ts_ns == boundary_ts and entry.key in boundary_keys:
                    continue
                fresh += 1
                yield entry
                returned += 1
                if returned >= limit:
                    return
            if len(page.entries) < request_size:
                return  # Loki had no more entries in the range
            if fresh == 0:
                raise LokiError("Loki returned the same page twice; stopping rather than looping")
            last_ts = page.entries[-1].ts_ns
            at_last = {e.key for e in page.entries if e.ts_ns == last_ts}
            if last_ts == boundary_ts:
                at_last |= boundary_keys
                floor = request_size * 2
            else:
                floor = 0
            boundary_ts, boundary_keys = last_ts, at_last
            if direction == "backward":
                end_ns = last_ts + 1
            else:
                start_ns = last_ts


def _reason(error: BaseException) -> str:
    """The innermost cause of a requests/urllib3 error, which says what went wrong (refused, timed out, …)."""
    while error.__context__ is not None and not isinstance(error, OSError):
        error = error.__context__
    text = str(error.args[0] if len(error.args) == 1 and isinstance(error.args[0], BaseException) else error)
    return text[:300]
