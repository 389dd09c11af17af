"""The Loki stand-in's fault switches: what the real Loki cannot be made to do on cue (500s, 429 with
Retry-After, refusing chosen entries, going down and coming back on the same port). How it answers pushes is
compared with the real Loki in tests/sinks/test_loki_differential.py."""

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
