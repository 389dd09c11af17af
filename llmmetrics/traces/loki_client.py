"""Page through Loki's ``/loki/api/v1/query_range`` until enough log entries are read.

Loki caps one answer at ``limit`` entries (and a server-side maximum, 5000 by default), so a longer answer
is read page by page, moving ``end`` (direction ``backward``, newest first) or ``start`` (``forward``) to
the timestamp of the last entry read. Several entries can share one nanosecond timestamp and a page can
end in the middle of them, so the next page starts *at* that timestamp again (``end`` is exclusive,
hence ``+1``) and the entries already read at it are skipped: nothing lost, nothing twice.

Requests ask for ``X-Loki-Response-Encoding-Flags: categorize-labels`` so that Loki 3 returns each entry's
structured metadata in a third element (``[ts, line, {"structuredMetadata": {...}, "parsed": {...}}]``)
instead of folding it into the stream labels; answers from older servers (two-element entries) decode too.

>>> client = LokiClient("http://127.0.0.1:3100")                                      # doctest: +SKIP
>>> lines = [e.line for e in client.entries('{service_name="llm-app"}', start_ns=0, end_ns=time.time_ns(),
...                                         limit=100)]                                 # doctest: +SKIP
"""

from __future__ import annotations

import base64
import dataclasses
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

__all__ = ["LokiClient", "LokiEntry", "LokiError", "LokiPage", "decode_query_range"]

#: Loki's default ``max_entries_limit_per_query``; a page never asks for more.
MAX_PAGE_SIZE = 5000


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


class LokiClient:
    """A small read-only Loki HTTP client (stdlib only): multi-tenant header, basic or bearer auth."""

    def __init__(
        self,
        url: str,
        *,
        tenant: str | None = None,
        username: str | None = None,
        password: str | None = None,
        bearer_token: str | None = None,
        timeout: float = 30.0,
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
        self.headers = {
            "Accept": "application/json",
            "X-Loki-Response-Encoding-Flags": "categorize-labels",
            "User-Agent": "llmmetrics-traces",
        }
        if tenant:
            self.headers["X-Scope-OrgID"] = tenant
        if bearer_token:
            self.headers["Authorization"] = f"Bearer {bearer_token}"
        elif username is not None:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        #: what was read, for the command's footer: pages fetched, bytes Loki scanned, Loki's execution time
        self.pages = 0
        self.bytes_processed = 0
        self.exec_time_seconds = 0.0

    def query_range(self, logql: str, *, start_ns: int, end_ns: int, limit: int, direction: str) -> LokiPage:
        """One request: entries with ``start_ns <= ts < end_ns``, at most ``limit``, in ``direction`` order."""
        params = urllib.parse.urlencode(
            {"query": logql, "start": str(start_ns), "end": str(end_ns), "limit": str(limit), "direction": direction}
        )
        request = urllib.request.Request(f"{self.base_url}/loki/api/v1/query_range?{params}", headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read()[:500].decode("utf-8", "replace").strip()
            raise LokiError(f"Loki answered HTTP {error.code} for {logql!r}: {detail}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise LokiError(f"cannot reach Loki at {self.base_url}: {reason}") from None
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
