"""The Loki stand-in refuses what Loki refuses, so a sink that passes against it speaks Loki's push API."""

from __future__ import annotations

import gzip
import http.client
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from tests.support.loki_contract_server import LokiContractServer


@pytest.fixture()
def loki() -> Iterator[LokiContractServer]:
    with LokiContractServer() as server:
        yield server


def now_ns() -> str:
    return str(time.time_ns())


def push(loki: LokiContractServer, body: Any, *, path: str = "/loki/api/v1/push", gzipped: bool = True,
         content_type: str = "application/json", encoding: str | None = None) -> tuple[int, str]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": content_type}
    if gzipped:
        raw = gzip.compress(raw)
        headers["Content-Encoding"] = "gzip"
    if encoding is not None:
        headers["Content-Encoding"] = encoding
    conn = http.client.HTTPConnection("127.0.0.1", loki.port, timeout=10)
    try:
        conn.request("POST", path, raw, headers)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def stream(labels: dict[str, str] | None = None, *values: list[Any]) -> dict[str, Any]:
    return {"streams": [{"stream": {"service_name": "svc"} if labels is None else labels, "values": list(values)}]}


class TestAcceptsValidPushes:
    def test_gzip_and_plain_json_are_accepted_with_204(self, loki: LokiContractServer) -> None:
        """A well-formed push answers 204, gzip-compressed or not, and its entries are recorded."""
        ts = now_ns()
        assert push(loki, stream(None, [ts, "a"]))[0] == 204
        assert push(loki, stream(None, [ts, "b", {"trace_id": "t1"}]), gzipped=False)[0] == 204
        assert loki.lines() == ["a", "b"]
        assert loki.accepted[1].metadata == {"trace_id": "t1"} and loki.accepted[1].ts_ns == int(ts)


class TestRefusesLikeLoki:
    @pytest.mark.parametrize("body, fragment", [
        (b"{not json", "loghttp.PushRequest"),
        ({"streams": [{"stream": {"service_name": "svc"}, "values": [[1700000000000000000, "x"]]}]},
         "timestamp must be a string"),
        (stream({"1bad": "x"}, [now_ns(), "x"]), "invalid label name"),
        (stream({f"l{i}": "v" for i in range(16)}, [now_ns(), "x"]), "has 16 label names; limit 15"),
        (stream({"service_name": "v" * 2049}, [now_ns(), "x"]), "label value too long"),
        (stream({}, [now_ns(), "x"]), "at least one label pair"),
        (stream(None, [now_ns(), "x", {"user_id": 42}]), "object of string to string"),
        (stream(None, [now_ns()]), "an entry must be"),
    ])
    def test_structural_errors_refuse_the_whole_push_with_400(self, loki: LokiContractServer, body: Any,
                                                              fragment: str) -> None:
        """Malformed JSON, numeric timestamps, bad label names/counts/lengths, bad metadata: 400, nothing stored."""
        status, text = push(loki, body)
        assert status == 400 and fragment in text
        assert loki.accepted == []

    def test_entry_errors_discard_the_entry_and_keep_the_rest(self, loki: LokiContractServer) -> None:
        """Too long, too old and out-of-order entries are discarded with 400 while valid ones are kept."""
        ts = time.time_ns()
        too_old = str(ts - 8 * 86400 * 10**9)
        status, text = push(loki, stream(None, [str(ts), "ok1"], [str(ts + 1), "x" * (256 * 1024 + 1)],
                                         [too_old, "old"], [str(ts - 5), "backwards"], [str(ts + 2), "ok2"]))
        assert status == 400
        assert loki.lines() == ["ok1", "ok2"]
        assert any("Max entry size" in e for e in loki.errors)
        assert any("timestamp too old" in e for e in loki.errors)
        assert "entry out of order" in text

    def test_out_of_order_entries_within_a_stream_are_refused(self, loki: LokiContractServer) -> None:
        """Entries of one stream in one push must be in timestamp order."""
        ts = time.time_ns()
        status, text = push(loki, stream(None, [str(ts), "later"], [str(ts - 1), "earlier"]))
        assert status == 400 and "entry out of order" in text
        assert loki.lines() == ["later"]

    def test_wrong_path_content_type_and_encoding(self, loki: LokiContractServer) -> None:
        """Only POST /loki/api/v1/push with application/json, gzip or identity encoding is served."""
        body = stream(None, [now_ns(), "x"])
        assert push(loki, body, path="/api/prom/push")[0] == 404
        assert push(loki, body, content_type="application/x-protobuf")[0] == 415
        assert push(loki, body, gzipped=False, encoding="br")[0] == 415
        assert push(loki, b"not gzip", gzipped=False, encoding="gzip")[0] == 400
        assert loki.accepted == []

    def test_loki2_mode_refuses_structured_metadata(self) -> None:
        """Emulating Loki 2.x, an entry with structured metadata is refused (so the switch-off is tested)."""
        with LokiContractServer(structured_metadata=False) as loki:
            assert push(loki, stream(None, [now_ns(), "x", {"trace_id": "t"}]))[0] == 400
            assert push(loki, stream(None, [now_ns(), "x"]))[0] == 204


class TestFaultModes:
    def test_fail_rate_limit_and_poison(self, loki: LokiContractServer) -> None:
        """fail() answers 500, rate_limit() 429 with Retry-After, poison() refuses matching entries only."""
        body = stream(None, [now_ns(), "x"])
        loki.fail(503)
        assert push(loki, body)[0] == 503
        loki.rate_limit("7")
        conn = http.client.HTTPConnection("127.0.0.1", loki.port, timeout=10)
        conn.request("POST", "/loki/api/v1/push", json.dumps(body).encode(), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 429 and resp.getheader("Retry-After") == "7"
        conn.close()
        loki.ok()
        loki.poison(lambda line: "bad" in line)
        ts = time.time_ns()
        assert push(loki, stream(None, [str(ts), "good"], [str(ts + 1), "bad"]))[0] == 400
        assert loki.lines() == ["good"]

    def test_down_refuses_connections_and_up_serves_on_the_same_port(self, loki: LokiContractServer) -> None:
        """down() makes connecting fail; up() listens again on the same port."""
        port = loki.port
        loki.down()
        with pytest.raises(OSError):
            push(loki, stream(None, [now_ns(), "x"]))
        loki.up()
        assert loki.port == port
        assert push(loki, stream(None, [now_ns(), "x"]))[0] == 204
