"""The Loki sink speaks Loki's push API: labels, structured metadata, timestamps, auth, limits, self-metrics.

What a real Loki can show runs against one (``real_loki``, each test in its own tenant); the stand-in serves
what only it can: the request headers as sent (auth), and a Loki that stalls or goes down on cue.
"""

from __future__ import annotations

import base64
import logging
import os
import time
from typing import Any

import pytest
from tests.support.loki_contract_server import LokiContractServer

from llmmetrics.config import Config, ConfigError
from llmmetrics.sinks import Sink
from llmmetrics.sinks.loki import LokiSink
from llmmetrics.sinks.loki_push import COMPRESSOR, PushEncoder, parse_retry_after, stream_labels
from tests.support.loki import Harness, index, record
from tests.support.loki_server import LokiServer, wait_until

ALL = '{service_name=~".+"}'


def stored(loki: LokiServer, tenant: str, count: int) -> list[int]:
    """The record numbers Loki holds for ``tenant`` once it holds ``count`` entries, oldest first."""
    return [index(line) for _, _, line, _ in loki.wait_for_count(tenant, ALL, count)]


class TestWireFormat:
    def test_is_a_sink(self, harness: Harness, loki: LokiContractServer) -> None:
        """LokiSink satisfies the Sink protocol under the name 'loki'."""
        sink = harness.sink(loki.url)
        assert isinstance(sink, Sink) and sink.name == "loki"

    def test_labels_metadata_and_timestamps(self, harness: Harness, real_loki: LokiServer, tenant: str) -> None:
        """Streams carry service_name/env/provider/level + static labels; ids go as structured metadata."""
        sink = harness.sink(real_loki.url, loki_tenant=tenant, service="checkout", env="prod",
                            loki_labels={"team": "payments"})
        r1 = record(1, level="error", request_id="req-9")
        r2 = record(2, user_id=None, provider="azure")
        sink.emit(r1)
        sink.emit(r2)
        assert sink.flush(10)
        by_index = {index(line): (labels, ts, line, meta) for labels, ts, line, meta in
                    real_loki.wait_for_count(tenant, ALL, 2)}
        (labels1, ts1, line1, meta1), (labels2, _, _, meta2) = by_index[1], by_index[2]
        assert labels1 == {"service_name": "checkout", "env": "prod", "team": "payments", "provider": "openai",
                           "level": "error"}
        assert labels2["provider"] == "azure" and labels2["level"] == "info"
        assert ts1 == r1.ts_ns and line1 == r1.line.decode()
        assert meta1 == {"trace_id": r1.trace_id, "span_id": r1.span_id, "call_id": r1.call_id, "user_id": "u-1",
                         "request_id": "req-9"}
        assert meta2 == {"trace_id": r2.trace_id, "span_id": r2.span_id, "call_id": r2.call_id}

    def test_records_emitted_newest_first_are_all_stored(self, harness: Harness, real_loki: LokiServer,
                                                         tenant: str) -> None:
        """Records emitted newest first reach Loki in one push, each at its own timestamp."""
        sink = harness.sink(real_loki.url, loki_tenant=tenant, loki_batch_wait_seconds=5.0)
        base = time.time_ns()
        for i in range(50):
            sink.emit(record(i, ts_ns=base - i * 1000))
        assert sink.flush(10)
        assert stored(real_loki, tenant, 50) == list(range(49, -1, -1))

    @pytest.mark.parametrize("compressor", ["zlib", "isal"])
    def test_both_compressors_write_gzip_loki_accepts(self, harness: Harness, real_loki: LokiServer, tenant: str,
                                                       compressor: str) -> None:
        """The stdlib zlib path and the optional ISA-L path both produce bodies Loki decodes."""
        if compressor == "isal" and COMPRESSOR != "isal":
            pytest.fail("the isal package is not installed: `pip install isal` to test the ISA-L path")
        encoder = PushEncoder(stream_labels(Config()), structured_metadata=True, compressor=compressor)
        assert encoder.compressor == compressor
        sink = LokiSink(Config(loki_url=real_loki.url, loki_tenant=tenant, trace_file=None,
                               loki_batch_wait_seconds=0.05), harness.metrics, encoder=encoder)
        harness.sinks.append(sink)
        for i in range(100):
            sink.emit(record(i))
        assert sink.flush(10)
        assert sorted(stored(real_loki, tenant, 100)) == list(range(100))

    def test_structured_metadata_can_be_switched_off_for_loki_2(self, harness: Harness, real_loki: LokiServer,
                                                                tenant: str) -> None:
        """With loki_structured_metadata=False entries carry none, so a Loki refusing metadata takes every one."""
        real_loki.set_limits(tenant, allow_structured_metadata=False)
        sink = harness.sink(real_loki.url, loki_tenant=tenant, loki_structured_metadata=False)
        for i in range(10):
            sink.emit(record(i))
        assert sink.flush(10)
        assert all(meta == {} for _, _, _, meta in real_loki.wait_for_count(tenant, ALL, 10))
        assert harness.value("llmmetrics_loki_pushes_total", outcome="rejected") == 0

    def test_url_with_a_path_prefix_and_the_full_push_path(self, harness: Harness, real_loki: LokiServer,
                                                           tenant: str) -> None:
        """A URL already ending in /loki/api/v1/push is used as is."""
        sink = harness.sink(real_loki.url + "/loki/api/v1/push", loki_tenant=tenant)
        sink.emit(record(1))
        assert sink.flush(10) and stored(real_loki, tenant, 1) == [1]


class TestAuth:
    def test_tenant_and_basic_auth(self, harness: Harness, loki: LokiContractServer) -> None:
        """X-Scope-OrgID carries the tenant; username/password become HTTP basic auth."""
        sink = harness.sink(loki.url, loki_tenant="team-a", loki_username="user", loki_password="pa:ss")
        sink.emit(record(1))
        assert sink.flush(10)
        headers = loki.attempts[0].headers
        assert headers["X-Scope-OrgID"] == "team-a"
        assert headers["Authorization"] == "Basic " + base64.b64encode(b"user:pa:ss").decode()

    def test_bearer_token_and_credentials_in_url(self, harness: Harness, loki: LokiContractServer) -> None:
        """A bearer token is sent as such; user:password@ in the URL becomes basic auth."""
        sink = harness.sink(loki.url, loki_bearer_token="tok-123")
        sink.emit(record(1))
        assert sink.flush(10)
        assert loki.attempts[-1].headers["Authorization"] == "Bearer tok-123"
        sink2 = harness.sink(loki.url.replace("http://", "http://me:secret@"))
        sink2.emit(record(2))
        assert sink2.flush(10)
        assert loki.attempts[-1].headers["Authorization"] == "Basic " + base64.b64encode(b"me:secret").decode()

    def test_credentials_never_reach_the_logs(self, harness: Harness, loki: LokiContractServer,
                                              caplog: pytest.LogCaptureFixture) -> None:
        """Failure and rejection warnings name the URL without user:password and never show tokens."""
        caplog.set_level(logging.DEBUG, logger="llmmetrics")
        loki.fail(500)
        sink = harness.sink(loki.url.replace("http://", "http://me:hunter2@"), loki_bearer_token="tok-secret",
                            loki_password="pw-secret")
        sink.emit(record(1))
        assert loki.wait_for(lambda s: len(s.attempts) >= 1, 10)
        loki.ok()
        loki.poison(lambda line: True)
        assert sink.flush(10)
        assert "rejected" in caplog.text and "failed" in caplog.text
        for secret in ("hunter2", "tok-secret", "pw-secret", "Basic ", "Bearer "):
            assert secret not in caplog.text


class TestValidation:
    @pytest.mark.parametrize("options, fragment", [
        ({"loki_labels": {"1team": "x"}}, "not a valid Loki label name"),
        ({"loki_labels": {"team-name": "x"}}, "not a valid Loki label name"),
        ({"loki_labels": {"level": "x"}}, "set by llmmetrics itself"),
        ({"loki_labels": {f"l{i}": "v" for i in range(12)}}, "at most 15"),
        ({"loki_labels": {"team": "v" * 2049}}, "at most 2048"),
        ({"loki_labels": {"team": ""}}, "non-empty"),
        ({"loki_url": "ftp://loki:3100"}, "http:// or https://"),
    ])
    def test_bad_configuration_is_refused_at_construction(self, harness: Harness, options: dict[str, Any],
                                                          fragment: str) -> None:
        """Invalid label names, too many labels, over-long values or a non-HTTP URL raise ConfigError."""
        options = {"loki_url": "http://127.0.0.1:9", **options}
        with pytest.raises(ConfigError, match=fragment):
            LokiSink(Config(trace_file=None, **options), harness.metrics)

    def test_over_long_line_is_dropped_and_counted(self, harness: Harness, real_loki: LokiServer, tenant: str) -> None:
        """A line over Loki's default 256 KB max_line_size never leaves the process; it is counted line_too_long."""
        sink = harness.sink(real_loki.url, loki_tenant=tenant)
        sink.emit(record(1, size=256 * 1024))
        sink.emit(record(2))
        assert sink.flush(10)
        assert stored(real_loki, tenant, 1) == [2]
        assert harness.value("llmmetrics_records_dropped_total", sink="loki", reason="line_too_long") == 1
        assert real_loki.discarded(tenant) == {}  # refused here, not by Loki

    def test_records_older_than_the_replay_horizon_are_dropped_and_counted(
            self, harness: Harness, real_loki: LokiServer, tenant: str) -> None:
        """A record older than loki_replay_max_age_seconds is counted too_old instead of being sent to fail."""
        sink = harness.sink(real_loki.url, loki_tenant=tenant, loki_replay_max_age_seconds=3600)
        sink.emit(record(1, ts_ns=time.time_ns() - 7200 * 10**9))
        sink.emit(record(2))
        assert sink.flush(10)
        assert stored(real_loki, tenant, 1) == [2]
        assert harness.value("llmmetrics_records_dropped_total", sink="loki", reason="too_old") == 1
        assert real_loki.discarded(tenant) == {}

    def test_retry_after_parsing(self) -> None:
        """Retry-After is read as delta-seconds or as an HTTP date; garbage is ignored."""
        assert parse_retry_after("7") == 7.0
        assert parse_retry_after("Fri, 27 Nov 2026 14:00:10 GMT", now=1795788000.0) == 10.0
        assert parse_retry_after("soon") is None and parse_retry_after(None) is None


class TestSelfMetrics:
    def test_pushes_duration_and_queue_gauges_are_exported(self, harness: Harness, real_loki: LokiServer,
                                                           tenant: str) -> None:
        """Successful pushes, push latency and queue depth/bytes show up under their fixed names."""
        sink = harness.sink(real_loki.url, loki_tenant=tenant)
        for i in range(20):
            sink.emit(record(i))
        assert sink.flush(10)
        assert harness.value("llmmetrics_loki_pushes_total", outcome="success") >= 1
        assert harness.value("llmmetrics_loki_push_duration_seconds_count") >= 1
        assert wait_until(lambda: harness.value("llmmetrics_export_queue_depth", sink="loki") == 0, 5)
        assert harness.registry.get_sample_value("llmmetrics_export_queue_bytes", {"sink": "loki"}) == 0


class TestLifecycle:
    def test_flush_is_bounded_while_loki_is_down_and_succeeds_once_it_is_back(
            self, harness: Harness, loki: LokiContractServer) -> None:
        """flush() returns False after its timeout when Loki is down, True once Loki is back."""
        loki.down()
        sink = harness.sink(loki.url)
        sink.emit(record(1))
        start = time.monotonic()
        assert sink.flush(0.5) is False
        assert time.monotonic() - start < 5
        loki.up()
        assert sink.flush(15)
        assert len(loki.accepted) == 1

    def test_close_never_hangs_on_a_stalled_loki(self, harness: Harness, loki: LokiContractServer) -> None:
        """With Loki holding the push unanswered, close(1) returns within a few seconds and counts the loss."""
        loki.stall()
        sink = harness.sink(loki.url, loki_timeout_seconds=60)
        sink.emit(record(1))
        assert loki.wait_for(lambda s: s._mode == "stall" and len(s._connections) > 0, 10)
        start = time.monotonic()
        sink.close(1.0)
        assert time.monotonic() - start < 5
        loki.release()
        assert harness.value("llmmetrics_records_dropped_total", sink="loki", reason="shutdown") == 1

    def test_emit_after_close_and_double_close_are_harmless(self, harness: Harness, loki: LokiContractServer) -> None:
        """Closing twice is a no-op; emit on a closed sink does not raise and counts the record as dropped."""
        sink = harness.sink(loki.url)
        sink.close(1.0)
        sink.close(1.0)
        sink.emit(record(1))
        assert harness.value("llmmetrics_records_dropped_total", sink="loki", reason="shutdown") == 1

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX-only")
    def test_worker_restarts_in_a_forked_child(self, harness: Harness, real_loki: LokiServer, tenant: str) -> None:
        """A forked child ships its own records (its worker was restarted by the at-fork hook)."""
        sink = harness.sink(real_loki.url, loki_tenant=tenant)
        sink.emit(record(1))
        assert sink.flush(10)
        pid = os.fork()
        if pid == 0:  # child
            try:
                sink.emit(record(2))
                os._exit(0 if sink.flush(10) else 1)
            except BaseException:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert sorted(stored(real_loki, tenant, 2)) == [1, 2]
