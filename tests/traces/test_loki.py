"""`llmmetrics traces` against Loki's query_range API: decoding, paging, errors, and the command end to end.

The server here is a real HTTP server on 127.0.0.1 that answers ``/loki/api/v1/query_range`` with the
shapes Loki documents and emits (pkg/util/marshal/query.go): ``resultType: streams``, entries as
``[ns, line]`` or — when asked with ``X-Loki-Response-Encoding-Flags: categorize-labels`` — as
``[ns, line, {"structuredMetadata": {...}, "parsed": {...}}]`` plus ``encodingFlags``, and a ``stats``
block. It honours ``start`` (inclusive), ``end`` (exclusive), ``limit`` and ``direction`` exactly, and
records every request so tests can assert the parameters. Of the LogQL it evaluates what comes before
``| json`` — the stream selector's ``name="value"`` matchers, ``|=`` line filters and structured-metadata
filters — so a label or metadata name the sink does not write finds nothing. What follows ``| json`` is
left to the command's own re-check of each record (the full text is checked by test_traces_logql.py
against Grafana's grammar), and both backends must give the same answer.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import orjson
import pytest
from tests.traces.test_local import FILTERS, TRACE, agent_run, dataset, ids_of

from llmmetrics.cli import main as llmmetrics_main
from llmmetrics.traces.loki_client import LokiClient, LokiError, decode_query_range
from tests.support.loki_server import LokiServer, wait_until
from tests.support.workload import Workload


def main(args: list[str]) -> int:
    """`llmmetrics traces ARGS` through the real command-line entry point."""
    return llmmetrics_main(["traces", *args])

STATS = {
    "summary": {"bytesProcessedPerSecond": 1048576, "linesProcessedPerSecond": 2048, "totalBytesProcessed": 2500000,
                "totalLinesProcessed": 5000, "execTime": 0.25, "queueTime": 0.001, "subqueries": 1,
                "totalEntriesReturned": 3, "splits": 1, "shards": 1},
    "querier": {"store": {"totalChunksRef": 1, "totalChunksDownloaded": 1, "chunksDownloadTime": 1000,
                          "chunk": {"headChunkBytes": 0, "headChunkLines": 0, "decompressedBytes": 2500000,
                                    "decompressedLines": 5000, "compressedBytes": 300000, "totalDuplicates": 0}}},
    "ingester": {"totalReached": 1, "totalChunksMatched": 0, "totalBatches": 1, "totalLinesSent": 3},
}


class Entry:
    def __init__(self, ts_ns: int, line: str, stream: dict[str, str], metadata: dict[str, str] | None = None):
        self.ts_ns, self.line, self.stream, self.metadata = ts_ns, line, stream, metadata or {}


_GO_STRING = r'"(?:[^"\\]|\\.)*"'
_MATCHER = re.compile(rf'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*({_GO_STRING})\s*,?')
_LINE_FILTER = re.compile(rf'\s*\|=\s*({_GO_STRING})')
_METADATA_FILTER = re.compile(rf'\s*\|\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*({_GO_STRING})')


def _unquote(literal: str) -> str:
    return json.loads(re.sub(r"\\x([0-9a-fA-F]{2})", r"\\u00\1", literal))


def selects(query: str) -> Callable[[Entry], bool]:
    """The part of ``query`` before ``| json`` as a predicate: selector matchers, line and metadata filters."""
    assert query.startswith("{"), query
    position, labels = 1, {}
    while (found := _MATCHER.match(query, position)) is not None:
        labels[found.group(1)] = _unquote(found.group(2))
        position = found.end()
    assert query[position] == "}" and labels, f"bad stream selector in {query!r}"
    position += 1
    texts, metadata = [], {}
    while True:
        if (found := _LINE_FILTER.match(query, position)) is not None:
            texts.append(_unquote(found.group(1)))
        elif (found := _METADATA_FILTER.match(query, position)) is not None:
            metadata[found.group(1)] = _unquote(found.group(2))
        else:
            break
        position = found.end()
    rest = query[position:].strip()
    assert rest == "" or rest.startswith("| json"), f"unexpected stage in {query!r}: {rest!r}"

    def predicate(entry: Entry) -> bool:
        return (all(entry.stream.get(k) == v for k, v in labels.items())
                and all(t in entry.line for t in texts)
                and all(entry.metadata.get(k) == v for k, v in metadata.items()))

    return predicate


class FakeLoki:
    """A query_range endpoint over a fixed list of entries, with Loki's range, limit and direction semantics."""

    def __init__(self, entries: list[Entry], *, fail_with: tuple[int, str] | None = None, failures: int = -1,
                 headers: dict[str, str] | None = None) -> None:
        self.entries = entries
        self.fail_with = fail_with
        self.failures = failures  # answer fail_with this many times (-1: always), then normally
        self.fail_headers = headers or {}
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        parsed = urllib.parse.urlsplit(request.path)
        params = dict(urllib.parse.parse_qsl(parsed.query))
        self.requests.append({"path": parsed.path, "params": params, "headers": {k.lower(): v for k, v in request.headers.items()}})
        if self.fail_with and self.failures != 0:
            self.failures -= 1
            self.reply(request, self.fail_with[0], self.fail_with[1].encode(), "text/plain", self.fail_headers)
            return
        if parsed.path != "/loki/api/v1/query_range":
            self.reply(request, 404, b"404 page not found\n", "text/plain")
            return
        start, end, limit = int(params["start"]), int(params["end"]), int(params["limit"])
        direction = params["direction"]
        assert 0 < limit <= 5000 and direction in ("forward", "backward") and start < end, params
        wanted = selects(params["query"])
        chosen = [e for e in self.entries if start <= e.ts_ns < end and wanted(e)]
        # Loki breaks timestamp ties by stream, then line; order it the same in both directions' terms.
        chosen.sort(key=lambda e: (e.ts_ns, sorted(e.stream.items()), e.line), reverse=direction == "backward")
        chosen = chosen[:limit]
        categorize = request.headers.get("x-loki-response-encoding-flags") == "categorize-labels"
        streams: dict[tuple[tuple[str, str], ...], list[list[Any]]] = {}
        for e in chosen:
            labels = dict(e.stream) if categorize else {**e.stream, **e.metadata}
            value: list[Any] = [str(e.ts_ns), e.line]
            if categorize:
                value.append({"structuredMetadata": e.metadata} if e.metadata else {})
            streams.setdefault(tuple(sorted(labels.items())), []).append(value)
        data: dict[str, Any] = {"resultType": "streams"}
        if categorize:
            data["encodingFlags"] = ["categorize-labels"]
        data["result"] = [{"stream": dict(k), "values": v} for k, v in streams.items()]
        data["stats"] = STATS
        self.reply(request, 200, orjson.dumps({"status": "success", "data": data}), "application/json")

    @staticmethod
    def reply(request: BaseHTTPRequestHandler, code: int, body: bytes, content_type: str,
              headers: dict[str, str] | None = None) -> None:
        request.send_response(code)
        for name, value in (headers or {}).items():
            request.send_header(name, value)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)


def entries_of(records: list[dict[str, Any]]) -> list[Entry]:
    """What the Loki sink pushes: the JSON line, labels service_name/env/provider/level, ids as metadata."""
    out = []
    for r in records:
        stream = {"service_name": r["service"], "env": r["env"], "level": "error" if r["status"] == "error" else "info"}
        if r.get("provider"):
            stream["provider"] = r["provider"]
        metadata = {k: r[k] for k in ("trace_id", "span_id", "call_id", "user_id", "request_id") if r.get(k)}
        out.append(Entry(r["ts_ns"], orjson.dumps(r).decode(), stream, metadata))
    return out


def numbered(count: int, timestamps: list[int]) -> list[Entry]:
    """``count`` entries with the given timestamps (cycled), lines ``line-<i>``, two alternating streams."""
    return [Entry(timestamps[i % len(timestamps)], f"line-{i}", {"service_name": "s", "level": ("info", "error")[i % 2]})
            for i in range(count)]


class TestDecoding:
    def test_the_documented_example_answer_decodes(self) -> None:
        """The query_range example of Loki's HTTP API docs (two-element values, no metadata)."""
        body = b"""{"status": "success", "data": {"resultType": "streams", "result": [{"stream": {
            "filename": "/var/log/myproject.log", "job": "varlogs", "level": "info"}, "values": [
            ["1569266497240578000", "foo"], ["1569266492548155000", "bar"]]}], "stats": {}}}"""
        page = decode_query_range(body)
        assert [(e.ts_ns, e.line) for e in page.entries] == [(1569266497240578000, "foo"), (1569266492548155000, "bar")]
        assert page.entries[0].stream["job"] == "varlogs" and page.entries[0].structured_metadata == {}

    def test_categorized_labels_give_structured_metadata_apart_from_the_stream(self) -> None:
        """Loki 3's third element carries structuredMetadata and parsed labels; streams merge newest first."""
        body = orjson.dumps({"status": "success", "data": {
            "resultType": "streams", "encodingFlags": ["categorize-labels"],
            "result": [
                {"stream": {"service_name": "a", "level": "info"},
                 "values": [["30", "l3", {"structuredMetadata": {"trace_id": "t3"}, "parsed": {"model": "m"}}],
                            ["10", "l1", {}]]},
                {"stream": {"service_name": "a", "level": "error"},
                 "values": [["20", "l2", {"structuredMetadata": {"trace_id": "t2", "user_id": "u"}}]]},
            ], "stats": STATS}})
        page = decode_query_range(body, direction="backward")
        assert [e.line for e in page.entries] == ["l3", "l2", "l1"]
        assert page.entries[0].structured_metadata == {"trace_id": "t3"}
        assert page.entries[1].stream == {"service_name": "a", "level": "error"}
        assert page.stats["summary"]["totalBytesProcessed"] == 2500000
        assert [e.line for e in decode_query_range(body, direction="forward").entries] == ["l1", "l2", "l3"]

    @pytest.mark.parametrize(("body", "message"), [
        (b'{"status":"error","errorType":"bad_data","error":"parse error at line 1"}', "parse error at line 1"),
        (b'{"status":"success","data":{"resultType":"matrix","result":[]}}', "resultType streams"),
        (b"<html>proxy error</html>", "invalid JSON"),
        (b'{"status":"success","data":{"resultType":"streams","result":[{"stream":{},"values":[["1"]]}]}}',
         "unexpected entry shape"),
    ])
    def test_answers_that_are_not_log_streams_raise_a_clear_error(self, body: bytes, message: str) -> None:
        """Errors, metric answers, HTML from a proxy and broken entries are reported, not mis-decoded."""
        with pytest.raises(LokiError, match=message):
            decode_query_range(body)


class TestPaging:
    def _read(self, fake: FakeLoki, *, page_size: int, limit: int = 1000, direction: str = "backward",
              start: int = 0, end: int = 10_000) -> list[str]:
        client = LokiClient(fake.url, page_size=page_size)
        return [e.line for e in client.entries('{service_name="s"}', start_ns=start, end_ns=end, limit=limit,
                                              direction=direction)]

    def test_equal_timestamps_across_a_page_boundary_are_neither_lost_nor_repeated(self) -> None:
        """Pages of 4 over 23 entries with runs of equal timestamps: every entry once, newest first."""
        timestamps = [100, 100, 100, 90, 90, 80, 70, 70, 70, 70, 70, 60, 50, 50, 40, 30, 30, 30, 20, 10, 10, 10, 10]
        entries = [Entry(ts, f"line-{i}", {"service_name": "s", "level": ("info", "error")[i % 2]})
                   for i, ts in enumerate(timestamps)]
        with FakeLoki(entries) as fake:
            lines = self._read(fake, page_size=4)
        assert sorted(lines) == sorted(e.line for e in entries) and len(lines) == len(set(lines))
        by_line = {e.line: e.ts_ns for e in entries}
        assert [by_line[line] for line in lines] == sorted(timestamps, reverse=True)
        requests = [r["params"] for r in fake.requests]
        assert all(r["direction"] == "backward" and r["start"] == "0" for r in requests)
        assert requests[0]["end"] == "10000" and requests[0]["limit"] == "4"
        # each next page ends just after (end is exclusive) the oldest timestamp the previous page reached
        assert [r["end"] for r in requests[1:4]] == ["91", "71", "71"]
        assert all(int(r["limit"]) <= 5000 for r in requests)

    def test_a_timestamp_shared_by_more_entries_than_a_page_is_still_read_completely(self) -> None:
        """Ten entries at one nanosecond with pages of 3: the page doubles past them instead of looping."""
        entries = numbered(10, [500]) + numbered(2, [400])
        for i, e in enumerate(entries):
            e.line = f"e{i}"
        with FakeLoki(entries) as fake:
            lines = self._read(fake, page_size=3)
        assert sorted(lines) == sorted(e.line for e in entries) and len(lines) == 12
        assert [int(r["params"]["limit"]) for r in fake.requests] == [3, 4, 8, 16]

    def test_forward_paging_moves_start_and_keeps_order(self) -> None:
        """direction=forward: oldest first, start moves to the newest timestamp read (start is inclusive)."""
        timestamps = [10, 20, 20, 20, 30, 40, 40, 50]
        entries = [Entry(ts, f"f{i}", {"service_name": "s"}) for i, ts in enumerate(timestamps)]
        with FakeLoki(entries) as fake:
            lines = self._read(fake, page_size=3, direction="forward")
        assert [int(line[1:]) for line in lines] == list(range(8))
        assert [r["params"]["start"] for r in fake.requests] == ["0", "20", "20", "40", "50"]
        assert all(r["params"]["end"] == "10000" for r in fake.requests)

    def test_the_limit_stops_paging_and_bounds_each_request(self) -> None:
        """Five entries asked of 100: one request of limit 5, five lines, nothing more fetched."""
        with FakeLoki(numbered(100, list(range(1000, 0, -10)))) as fake:
            lines = self._read(fake, page_size=1000, limit=5)
        assert len(lines) == 5 and [r["params"]["limit"] for r in fake.requests] == ["5"]

    def test_headers_ask_for_categorized_labels_and_carry_tenant_and_auth(self) -> None:
        """X-Loki-Response-Encoding-Flags, X-Scope-OrgID and basic auth are sent; the stats are summed."""
        with FakeLoki(numbered(3, [3, 2, 1])) as fake:
            client = LokiClient(fake.url, tenant="team-a", username="reader", password="s3cret")
            list(client.entries('{service_name="s"}', start_ns=0, end_ns=10, limit=10))
        headers = fake.requests[0]["headers"]
        assert headers["x-loki-response-encoding-flags"] == "categorize-labels"
        assert headers["x-scope-orgid"] == "team-a"
        assert headers["authorization"] == "Basic cmVhZGVyOnMzY3JldA=="
        assert client.pages == 1 and client.bytes_processed == 2500000

    def test_credentials_in_the_url_become_basic_auth_and_stay_out_of_messages(self) -> None:
        """http://user:pass@host sends basic auth; an error message shows the URL without the password."""
        with FakeLoki(numbered(1, [1]), fail_with=(500, "internal")) as fake:
            url = fake.url.replace("http://", "http://reader:s3cret@")
            with pytest.raises(LokiError) as caught:
                LokiClient(url, retries=0).query_range('{a="b"}', start_ns=0, end_ns=10, limit=1, direction="backward")
        assert fake.requests[0]["headers"]["authorization"] == "Basic cmVhZGVyOnMzY3JldA=="
        with pytest.raises(LokiError) as caught:
            LokiClient(url, timeout=5, retries=0).query_range('{a="b"}', start_ns=0, end_ns=10, limit=1,
                                                              direction="backward")
        assert "s3cret" not in str(caught.value) and "cannot reach Loki at http://127.0.0.1:" in str(caught.value)

    def test_http_errors_and_unreachable_servers_raise_loki_error(self) -> None:
        """Loki's 400 text is passed on; a closed port says Loki cannot be reached."""
        with FakeLoki([], fail_with=(400, "parse error : syntax error: unexpected IDENTIFIER")) as fake:
            with pytest.raises(LokiError, match="HTTP 400.*unexpected IDENTIFIER"):
                LokiClient(fake.url).query_range("{a=}", start_ns=0, end_ns=1, limit=1, direction="backward")
            url = fake.url
        with pytest.raises(LokiError, match="cannot reach Loki"):
            LokiClient(url, timeout=5, retries=0).query_range("{a=\"b\"}", start_ns=0, end_ns=1, limit=1,
                                                              direction="backward")

    def test_429_and_5xx_are_retried_a_bounded_number_of_times(self) -> None:
        """A 503 then a 429 (Retry-After: 0) are retried and the third answer is read; a lasting 500 is
        reported after 1 + retries requests, with Loki's text."""
        with FakeLoki(numbered(2, [2, 1]), fail_with=(503, "too busy"), failures=1) as fake:
            client = LokiClient(fake.url)
            assert len(client.query_range('{service_name="s"}', start_ns=0, end_ns=10, limit=5,
                                          direction="backward").entries) == 2
        assert len(fake.requests) == 2
        with FakeLoki(numbered(2, [2, 1]), fail_with=(429, "slow down"), failures=2,
                      headers={"Retry-After": "0"}) as fake:
            LokiClient(fake.url, retries=2).query_range('{service_name="s"}', start_ns=0, end_ns=10, limit=5,
                                                         direction="backward")
        assert len(fake.requests) == 3
        with FakeLoki([], fail_with=(500, "ingester down"), headers={"Retry-After": "0"}) as fake:
            with pytest.raises(LokiError, match="HTTP 500.*ingester down"):
                LokiClient(fake.url, retries=2).query_range('{service_name="s"}', start_ns=0, end_ns=10, limit=5,
                                                             direction="backward")
        assert len(fake.requests) == 3


@pytest.fixture()
def loki_and_file(tmp_path, monkeypatch) -> Iterator[tuple[FakeLoki, str]]:
    """The local test dataset both as a JSONL file and as entries in a stand-in Loki."""
    records = dataset() + agent_run()
    path = tmp_path / "traces.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    monkeypatch.delenv("LLMMETRICS_LOKI_URL", raising=False)
    monkeypatch.setenv("LLMMETRICS_SERVICE", "checkout")
    with FakeLoki(entries_of(records)) as fake:
        yield fake, str(path)


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


class TestCommandOnLoki:
    @pytest.mark.parametrize(("args", "expected"), FILTERS, ids=[" ".join(a) or "none" for a, _ in FILTERS])
    def test_loki_and_the_local_file_give_the_same_answer(self, loki_and_file, capsys, args, expected) -> None:
        """Each filter over Loki returns the same records as over the file, and sends the printed LogQL.

        Loki always selects one service (LLMMETRICS_SERVICE=checkout here), so the file is asked for it too.
        """
        fake, path = loki_and_file
        if not any(a in args for a in ("--since", "--from")):
            args = [*args, "--since", "4d"]
        if "--service" not in args:
            args = [*args, "--service", "checkout"]
            expected = expected - {9}  # call 9 was made by the billing service
        common = ["--format", "json", "--limit", "100", *args]
        code, out_loki, _ = run_cli(capsys, "--loki-url", fake.url, *common)
        assert code == 0
        _, out_file, _ = run_cli(capsys, "--file", path, *common)
        assert ids_of(out_loki) == ids_of(out_file)
        assert set(ids_of(out_loki)) == expected
        _, logql, _ = run_cli(capsys, "--print-logql", *common)
        assert {r["params"]["query"] for r in fake.requests} == {logql.strip()}

    def test_the_article_query_over_loki(self, loki_and_file, capsys) -> None:
        """Errors of the last 6 hours sorted by latency: the whole range is read, then sorted."""
        fake, _ = loki_and_file
        code, out, err = run_cli(capsys, "--loki-url", fake.url, "--status", "error", "--since", "6h",
                                 "--sort", "-latency", "--format", "json")
        assert code == 0 and ids_of(out) == [103, 6, 3]
        assert "read 5 entries from Loki in 1 page(s)" in err  # service checkout, level error: 3 calls, 2 runs

    def test_tree_and_aggregation_over_loki(self, loki_and_file, capsys) -> None:
        """--trace-id draws the same tree from Loki; --sum/--by totals match the file's."""
        fake, path = loki_and_file
        _, tree_loki, _ = run_cli(capsys, "--loki-url", fake.url, "--since", "1h", "--trace-id", TRACE)
        _, tree_file, _ = run_cli(capsys, "--file", path, "--trace-id", TRACE)
        assert tree_loki == tree_file and "← failed step" in tree_loki
        agg = ["--since", "4d", "--service", "checkout", "--sum", "cost_usd", "--by", "feature_flags.new_prompt", "--format", "json"]
        _, sums_loki, _ = run_cli(capsys, "--loki-url", fake.url, *agg)
        _, sums_file, _ = run_cli(capsys, "--file", path, *agg)
        assert sums_loki == sums_file and sums_loki.count("\n") == 2

    def test_oldest_first_reads_loki_forward(self, loki_and_file, capsys) -> None:
        """--sort time asks Loki for direction=forward and takes the first entries it returns."""
        fake, _ = loki_and_file
        code, out, _ = run_cli(capsys, "--loki-url", fake.url, "--since", "4d", "--service", "checkout",
                               "--sort", "time", "--limit", "2", "--format", "json")
        assert code == 0 and ids_of(out) == [1, 2]
        assert [r["params"]["direction"] for r in fake.requests] == ["forward"]
        assert fake.requests[0]["params"]["limit"] == "2"

    def test_without_since_the_last_24_hours_are_searched_and_said(self, loki_and_file, capsys) -> None:
        """Loki needs a start: the default window is 24 h, and the footer tells the user."""
        fake, _ = loki_and_file
        code, out, err = run_cli(capsys, "--loki-url", fake.url, "--format", "json", "--limit", "100")
        assert code == 0 and 1 not in ids_of(out) and 2 in ids_of(out)
        assert "searched the last 24h" in err
        start = int(fake.requests[0]["params"]["start"])
        end = int(fake.requests[0]["params"]["end"])
        assert timedelta(hours=23, minutes=59) < timedelta(microseconds=(end - start) / 1000) < timedelta(hours=24, minutes=1)

    def test_the_configured_loki_url_is_used_unless_a_file_is_given(self, loki_and_file, capsys, monkeypatch) -> None:
        """LLMMETRICS_LOKI_URL selects Loki by default; --file still forces the local file."""
        fake, path = loki_and_file
        monkeypatch.setenv("LLMMETRICS_LOKI_URL", fake.url)
        run_cli(capsys, "--since", "1h", "--limit", "1")
        assert len(fake.requests) == 1
        code, _, err = run_cli(capsys, "--file", path, "--limit", "1")
        assert code == 0 and len(fake.requests) == 1 and "scanned" in err

    def test_a_scan_cap_is_reported(self, loki_and_file, capsys) -> None:
        """Sorting needs every match; when --scan-limit stops the read, the footer says the answer is partial."""
        fake, _ = loki_and_file
        code, out, err = run_cli(capsys, "--loki-url", fake.url, "--since", "4d", "--sort", "-cost",
                                 "--scan-limit", "3", "--format", "json")
        assert code == 0 and len(out.splitlines()) <= 3
        assert "stopped at --scan-limit 3" in err

    def test_loki_failures_exit_1_with_lokis_message(self, capsys) -> None:
        """A refused query exits 1 and shows Loki's reason, never a traceback."""
        with FakeLoki([], fail_with=(400, "parse error : queries require at least one regexp or equality")) as fake:
            code, out, err = run_cli(capsys, "--loki-url", fake.url, "--since", "1h")
        assert code == 1 and out == ""
        assert "HTTP 400" in err and "at least one regexp" in err



class TestTransportToARealLoki:
    """`--loki-url` through a real HTTP proxy (tinyproxy) and to a real Loki serving TLS with a private CA."""

    @pytest.fixture()
    def tls_workload(self, workload: Workload, tls_loki: LokiServer) -> Workload:
        """The session's workload records, pushed as the sink writes them into the TLS Loki (once)."""
        tenant = "tls-" + workload.tenant
        if not tls_loki.entries(tenant, '{service_name="checkout"}'):
            streams = [{"stream": e.stream, "values": [[str(e.ts_ns), e.line, e.metadata]]}
                       for e in entries_of(workload.records())]
            status, body = tls_loki.push(tenant, orjson.dumps({"streams": streams}), {"Content-Type": "application/json"})
            assert status == 204, body
        return dataclasses.replace(workload, tenant=tenant, loki=tls_loki)

    @staticmethod
    def ask(capsys, w: Workload, *extra: str) -> tuple[int, str, str]:
        return run_cli(capsys, "--loki-url", w.loki.url, "--loki-tenant", w.tenant, "--service", "checkout",
                       "--status", "error", "--format", "json", *extra)

    @staticmethod
    def errors(w: Workload) -> list[str]:
        return sorted(json.dumps(r, separators=(",", ":")) for r in w.records()
                      if r["kind"] == "call" and r["status"] == "error")

    def test_a_private_ca_from_the_option_or_requests_ca_bundle(self, tls_workload, capsys,
                                                                no_proxy_environment) -> None:
        """--loki-ca-file or REQUESTS_CA_BUNDLE verifies the private CA; without it the command says what to set."""
        code, out, err = self.ask(capsys, tls_workload)
        assert code == 1 and "TLS with Loki at https://127.0.0.1:" in err and "--loki-ca-file" in err, err
        ca = str(tls_workload.loki.tls.ca)
        code, out, err = self.ask(capsys, tls_workload, "--loki-ca-file", ca)
        assert code == 0, err
        assert sorted(json.dumps(json.loads(line), separators=(",", ":")) for line in out.splitlines()) == \
            self.errors(tls_workload)
        no_proxy_environment.setenv("REQUESTS_CA_BUNDLE", ca)
        assert self.ask(capsys, tls_workload)[:2] == (0, out)

    def test_the_proxy_from_the_environment_unless_no_proxy(self, workload, tls_workload, proxy, capsys,
                                                            no_proxy_environment) -> None:
        """HTTP_PROXY forwards the plain-HTTP reads, HTTPS_PROXY tunnels the TLS ones; NO_PROXY bypasses both."""
        no_proxy_environment.setenv("HTTP_PROXY", proxy.url)
        no_proxy_environment.setenv("HTTPS_PROXY", proxy.url)
        code, plain, err = self.ask(capsys, workload)
        assert code == 0, err
        code, tunnelled, err = self.ask(capsys, tls_workload, "--loki-ca-file", str(tls_workload.loki.tls.ca))
        assert code == 0 and tunnelled == plain, err
        get = f"GET {workload.loki.url}/loki/api/v1/query_range?"
        connect = f"CONNECT 127.0.0.1:{tls_workload.loki.http_port} HTTP/1.0"
        assert wait_until(lambda: any(r.startswith(get) for r in proxy.requests()) and connect in proxy.requests(),
                          10), proxy.requests()
        seen = len(proxy.requests())
        no_proxy_environment.setenv("NO_PROXY", "127.0.0.1")
        assert self.ask(capsys, workload)[:2] == (0, plain)
        assert len(proxy.requests()) == seen


class TestPagingOnARealLoki:
    def test_pages_across_runs_of_equal_timestamps_read_every_entry_once_in_order(self, real_loki, tenant) -> None:
        """23 entries in two streams with runs of equal timestamps, pages of 4 (and of 3 for the longest run):
        the real Loki's answers, paged backward and forward, give each entry once, in time order."""
        base = time.time_ns() - 10**9
        offsets = [100, 100, 100, 90, 90, 80, 70, 70, 70, 70, 70, 60, 50, 50, 40, 30, 30, 30, 20, 10, 10, 10, 10]
        entries = [Entry(base + ts, f"line-{i}", {"service_name": "s", "level": ("info", "error")[i % 2]})
                   for i, ts in enumerate(offsets)]
        body = {"streams": [{"stream": e.stream, "values": [[str(e.ts_ns), e.line]]} for e in entries]}
        status, text = real_loki.push(tenant, orjson.dumps(body), {"Content-Type": "application/json"})
        assert status == 204, text
        real_loki.wait_for_count(tenant, '{service_name="s"}', len(entries))
        by_line = {e.line: e.ts_ns for e in entries}
        for page_size in (4, 3):
            for direction in ("backward", "forward"):
                client = LokiClient(real_loki.url, tenant=tenant, page_size=page_size)
                lines = [e.line for e in client.entries('{service_name="s"}', start_ns=base, end_ns=base + 1000,
                                                       limit=1000, direction=direction)]
                assert sorted(lines) == sorted(by_line), (page_size, direction)
                stamps = [by_line[line] for line in lines]
                assert stamps == sorted(stamps, reverse=direction == "backward"), (page_size, direction)
                assert client.pages > len(entries) // page_size
                client.close()
