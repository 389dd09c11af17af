"""The Loki stand-in against the real Loki: the same pushes sent to both must get the same status, store the
same entries, and be read the same way by the sink (``refused_entries``), so the stand-in cannot drift.

The stand-in models Loki's default limits (max_line_size 256 KB); the real Loki's tenant here is given them
too, since the shipped configuration raises max_line_size to 512 KB.
"""

from __future__ import annotations

import gzip
import http.client
import json
import time
from collections import Counter
from typing import Any

import pytest

from llmmetrics.sinks.loki_push import refused_entries
from tests.support.loki_contract_server import LokiContractServer
from tests.support.loki_server import LokiServer

NOW = time.time_ns()
ALL = '{service_name=~".+"}'
OLD = NOW - 8 * 86400 * 10**9


def stream(labels: dict[str, str] | None, *values: list[Any]) -> dict[str, Any]:
    return {"stream": {"service_name": "svc", "level": "info"} if labels is None else labels, "values": list(values)}


def push(*streams: dict[str, Any]) -> dict[str, Any]:
    return {"streams": list(streams)}


def v(offset: int, line: str, *metadata: dict[str, Any]) -> list[Any]:
    return [str(NOW + offset), line, *metadata]


#: name → (body, headers beyond the JSON+gzip default, path)
CASES: dict[str, tuple[Any, dict[str, str], str]] = {
    "valid, with metadata": (push(stream(None, v(0, "a", {"trace_id": "t1"}), v(1, "b"))), {}, ""),
    "plain JSON, no gzip": (push(stream(None, v(0, "a"))), {"Content-Encoding": ""}, ""),
    "out of order within a stream": (push(stream(None, v(5, "later"), v(1, "earlier"))), {}, ""),
    "entry without a line": (push(stream(None, [str(NOW)])), {}, ""),
    "metadata name not a label name": (push(stream(None, v(0, "a", {"1bad": "x"}))), {}, ""),
    "empty label value dropped": (push(stream({"service_name": "svc", "team": ""}, v(0, "a"))), {}, ""),
    "too old and too long among valid": (push(
        stream(None, v(0, "ok1"), [str(OLD), "old1"], [str(OLD + 1), "old2"], v(2, "x" * (256 * 1024 + 1)),
               v(3, "ok2")),
        stream({"service_name": "svc", "level": "error"}, [str(OLD + 2), "old3"], v(4, "ok3"))), {}, ""),
    "one entry too old": (push(stream(None, [str(OLD), "old"], v(0, "ok"))), {}, ""),
    "16 labels, next to a valid stream": (push(stream({f"l{i}": "v" for i in range(16)}, v(0, "a")),
                                                stream(None, v(0, "fine"))), {}, ""),
    "label value too long": (push(stream({"service_name": "v" * 2049}, v(0, "a"))), {}, ""),
    "bad label name": (push(stream({"1bad": "x"}, v(0, "a"))), {}, ""),
    "no labels": (push(stream({}, v(0, "a"))), {}, ""),
    "no streams": (push(), {}, ""),
    "numeric timestamp": (push(stream(None, [NOW, "a"])), {}, ""),
    "metadata value not a string": (push(stream(None, v(0, "a", {"user_id": 42}))), {}, ""),
    "not JSON": (b"{not json", {}, ""),
    "not gzip": (b"not gzip", {"Content-Encoding": "gzip", "raw": "1"}, ""),
    "unknown encoding": (push(stream(None, v(0, "a"))), {"Content-Encoding": "br", "raw": "1"}, ""),
    "protobuf content type": (push(stream(None, v(0, "a"))), {"Content-Type": "application/x-protobuf"}, ""),
}


def encode(body: Any, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = {"Content-Type": "application/json", "Content-Encoding": "gzip", **headers}
    if sent.pop("raw", None) is None and sent["Content-Encoding"] == "gzip" and not isinstance(body, bytes):
        raw = gzip.compress(raw)
    if not sent["Content-Encoding"]:
        del sent["Content-Encoding"]
    return raw, sent


def sizes(body: Any) -> list[tuple[dict[str, str], int]]:
    """What the sink knows of a push it sent: each stream's labels and entry count."""
    if isinstance(body, bytes):
        return [({}, 1)]
    return [(s["stream"], len(s["values"])) for s in body["streams"]] or [({}, 0)]


@pytest.fixture(scope="module")
def stand_in() -> Any:
    with LokiContractServer() as server:
        yield server


@pytest.fixture(scope="module")
def tenants(real_loki: LokiServer) -> dict[str, str]:
    """A tenant per case, each with the default max_line_size the stand-in models."""
    names = {name: f"differential-{i}" for i, name in enumerate(CASES)}
    real_loki.set_limits(list(names.values()), max_line_size="256KB")
    return names


@pytest.mark.parametrize("name", list(CASES))
def test_the_stand_in_answers_pushes_as_the_real_loki_does(real_loki: LokiServer, tenants: dict[str, str],
                                                          stand_in: LokiContractServer, name: str) -> None:
    """Same push to both: same status, same entries stored, and the sink reads both refusals the same way."""
    body, headers, path = CASES[name]
    tenant = tenants[name]
    raw, sent = encode(body, headers)
    path = path or "/loki/api/v1/push"
    real_status, real_text = real_loki.request("POST", path, tenant=tenant, body=raw, headers=sent)
    before = len(stand_in.accepted)
    conn = http.client.HTTPConnection("127.0.0.1", stand_in.port, timeout=10)
    try:
        conn.request("POST", path, raw, sent)
        answer = conn.getresponse()
        stand_in_status, stand_in_text = answer.status, answer.read()
    finally:
        conn.close()
    assert stand_in_status == real_status, (real_text, stand_in_text)
    if real_status == 400:
        assert refused_entries(stand_in_text.decode(), sizes(body)) == refused_entries(real_text.decode(), sizes(body)), \
            (real_text, stand_in_text)
    stored = Counter((ts, line, tuple(sorted(meta.items())))
                     for _, ts, line, meta in real_loki.entries(tenant, ALL))
    accepted = Counter((e.ts_ns, e.line, tuple(sorted(e.metadata.items()))) for e in stand_in.accepted[before:])
    assert accepted == stored


def test_with_structured_metadata_disallowed_both_refuse_only_the_entries_carrying_it(
        real_loki: LokiServer, tenant: str) -> None:
    """The stand-in without metadata support answers as a tenant with allow_structured_metadata: false."""
    real_loki.set_limits(tenant, allow_structured_metadata=False)
    body = push(stream(None, v(0, "with", {"trace_id": "t"}), v(1, "without")))
    raw, sent = encode(body, {})
    real = real_loki.push(tenant, raw, sent)
    with LokiContractServer(structured_metadata=False) as stand_in:
        conn = http.client.HTTPConnection("127.0.0.1", stand_in.port, timeout=10)
        conn.request("POST", "/loki/api/v1/push", raw, sent)
        answer = conn.getresponse()
        text = answer.read()
        conn.close()
        assert (answer.status, [e.line for e in stand_in.accepted]) == (real[0], ["without"]) == \
            (400, [line for _, _, line, _ in real_loki.entries(tenant, ALL)])
    assert refused_entries(text.decode(), sizes(body)) == refused_entries(real[1].decode(), sizes(body)) == \
        {"rejected": 1}
