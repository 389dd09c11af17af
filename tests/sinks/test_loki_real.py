"""The Loki sink against a real Loki (``binary("loki")``, the shipped loki/loki-config.yml): what it stores,
what survives a Loki crash, and how each of Loki's own refusals is handled and counted."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.loki import Harness, index, record
from tests.support.loki_server import LokiServer, wait_until
from tests.support.tls_proxy import TinyProxy
from tests.support.workload import CALLS, RUNS, llm_clients, trace_calls

ALL = '{service_name=~".+"}'


def assert_exactly_once(rows: list[Any], expected: range | list[int]) -> None:
    counts = Counter(index(line) for _, _, line, _ in rows)
    assert sorted(counts) == sorted(expected), f"missing: {sorted(set(expected) - set(counts))[:10]}"
    assert set(counts.values()) == {1}, f"duplicates: {[i for i, c in counts.items() if c > 1][:10]}"


@pytest.fixture(scope="module")
def clients() -> Iterator[Any]:
    with llm_clients() as pair:
        yield pair


class TestWhatLokiStores:
    def test_every_record_of_a_mixed_run_is_stored_once_with_its_labels_and_metadata(
            self, real_loki: LokiServer, tenant: str, clients: Any, tmp_path: Path) -> None:
        """Calls, a stream, failures and an agent run: each trace-file record is in Loki once, labelled as documented."""
        path = tmp_path / "traces.jsonl"
        trace_calls(clients, trace_file=str(path), loki_url=real_loki.url, loki_tenant=tenant,
                    loki_batch_wait_seconds=0.05)
        assert "sk-test" not in path.read_text()  # the API key is never recorded
        records = [orjson.loads(line) for line in path.read_bytes().splitlines()]
        assert Counter(r["kind"] for r in records) == {"call": CALLS, "run": RUNS}
        rows = real_loki.wait_for_count(tenant, '{service_name="checkout"}', len(records))
        stored = {(ts, line): (labels, metadata) for labels, ts, line, metadata in rows}
        assert len(stored) == len(records)
        for r in records:
            line = orjson.dumps(r).decode()
            labels, metadata = stored[(r["ts_ns"], line)]
            assert labels == {"service_name": "checkout", "env": "test", "provider": r.get("provider") or "unknown",
                              "level": "error" if r["status"] == "error" else "info"}
            # the shipped config adds nothing (no detected_level): metadata is exactly the sink's ids
            assert metadata == {k: r[k] for k in ("trace_id", "span_id", "call_id", "user_id", "request_id")
                                if r.get(k)}

    def test_loki_defaults_add_detected_level_but_the_sink_labels_still_select_every_record(
            self, real_loki: LokiServer, tenant: str, harness: Harness) -> None:
        """With Loki 3's discovery on (its defaults) records gain detected_level metadata; nothing else changes."""
        real_loki.set_limits(tenant, discover_log_levels=True,
                             discover_service_name=["service", "app", "application", "name", "job"])
        sink = harness.sink(real_loki.url, loki_tenant=tenant, service="checkout")
        sink.emit(record(0, level="error"))
        sink.emit(record(1))
        assert sink.flush(10)
        rows = real_loki.wait_for_count(tenant, '{service_name="checkout", level="error"}', 1)
        assert rows[0][3]["detected_level"] == "error" and rows[0][0]["level"] == "error"
        assert len(real_loki.wait_for_count(tenant, '{service_name="checkout"}', 2)) == 2

    def test_the_tenant_header_separates_tenants_and_no_tenant_is_refused(
            self, real_loki: LokiServer, tenant: str, harness: Harness) -> None:
        """auth_enabled: records land in loki_tenant's store only; without a tenant Loki answers 401, counted."""
        sink = harness.sink(real_loki.url, loki_tenant=tenant)
        sink.emit(record(1))
        assert sink.flush(10)
        real_loki.wait_for_count(tenant, ALL, 1)
        assert real_loki.entries(tenant + "-other", ALL) == []
        anonymous = harness.sink(real_loki.url)
        anonymous.emit(record(2))
        anonymous.emit(record(3))
        assert anonymous.flush(10)
        assert harness.value("llmmetrics_records_dropped_total", sink="loki", reason="rejected") == 2
        assert harness.value("llmmetrics_export_errors_total", sink="loki", reason="http_4xx") == 1


class TestLokiCrash:
    @pytest.mark.parametrize("spool", [False, True], ids=["memory", "spool"])
    def test_loki_killed_mid_run_and_restarted_on_its_data_loses_and_duplicates_nothing(
            self, harness: Harness, tmp_path: Path, spool: bool) -> None:
        """SIGKILL Loki while records flow, start it again on the same directory: every record stored once."""
        n = 3000
        with LokiServer(tmp_path / "loki") as loki:
            sink = harness.sink(loki.url, loki_tenant="crash", loki_batch_max_entries=100,
                                loki_spool_dir=str(tmp_path / "spool") if spool else None)
            halfway = threading.Event()

            def produce() -> None:
                for i in range(n):
                    sink.emit(record(i))
                    if i == n // 2:
                        halfway.set()
                    if i % 100 == 0:
                        time.sleep(0.005)  # spread the run over several pushes

            producer = threading.Thread(target=produce)
            producer.start()
            assert halfway.wait(30)
            assert wait_until(lambda: harness.value("llmmetrics_loki_pushes_total", outcome="success") >= 3, 30)
            loki.kill()
            assert wait_until(lambda: harness.value("llmmetrics_loki_retries_total") >= 1, 30)
            loki.start()
            producer.join(30)
            assert sink.flush(60)
            assert_exactly_once(loki.wait_for_count("crash", ALL, n, timeout=30), range(n))
            assert harness.value("llmmetrics_export_errors_total", sink="loki", reason="connection") >= 1
            dropped = sum(harness.value("llmmetrics_records_dropped_total", sink="loki", reason=r)
                          for r in ("rejected", "queue_full", "shutdown"))
            assert dropped == 0


def padded(i: int, size: int, **kw: Any) -> Any:
    return record(i, size=size, **kw)


class TestLokiRefusals:
    @pytest.mark.parametrize("spool", [False, True], ids=["memory", "spool"])
    def test_429_from_a_tiny_ingestion_rate_is_retried_in_halved_pushes_until_all_are_in(
            self, real_loki: LokiServer, tenant: str, harness: Harness, tmp_path: Path, spool: bool) -> None:
        """A batch over the tenant's burst is refused whole (429) however long one waits: halving gets it in,
        from memory and from the spool (a spooled segment is replayed in halved pushes)."""
        real_loki.set_limits(tenant, ingestion_rate_mb=0.2, ingestion_burst_size_mb=0.03)
        sink = harness.sink(real_loki.url, loki_tenant=tenant, loki_batch_wait_seconds=1.0,
                            loki_spool_dir=str(tmp_path) if spool else None)
        n = 200
        for i in range(n):
            sink.emit(record(i, size=900))  # ~200 KB in one batch, ~7 times the 30 KB burst
        assert sink.flush(60)
        assert_exactly_once(real_loki.wait_for_count(tenant, ALL, n), range(n))
        assert real_loki.discarded(tenant).get("rate_limited", 0) >= 1
        assert harness.value("llmmetrics_export_errors_total", sink="loki", reason="http_429") >= 1
        assert sum(harness.value("llmmetrics_records_dropped_total", sink="loki", reason=r)
                   for r in ("rejected", "queue_full", "shutdown")) == 0
        if spool:
            assert list(tmp_path.rglob("*.seg")) == []

    @pytest.mark.parametrize("case", ["line_too_long", "too_old", "out_of_order", "invalid_labels"])
    def test_refused_entries_are_dropped_by_reason_with_loki_s_own_count_and_the_rest_stored(
            self, real_loki: LokiServer, tenant: str, harness: Harness, case: str) -> None:
        """Loki keeps the valid entries of a push and names the others: the sink counts exactly those, by reason."""
        now = time.time_ns()
        options: dict[str, Any] = {}
        good = list(range(10))
        if case == "line_too_long":
            real_loki.set_limits(tenant, max_line_size="2KB")
            bad = [padded(i, 3000) for i in (10, 11, 12)]
            loki_reason = "line_too_long"
        elif case == "too_old":
            real_loki.set_limits(tenant, reject_old_samples_max_age="1h")
            bad = [record(i, ts_ns=now - 2 * 3600 * 10**9 + i) for i in (10, 11, 12, 13)]
            loki_reason = "greater_than_max_sample_age"
        elif case == "out_of_order":
            bad = [record(i, ts_ns=now - 2 * 3600 * 10**9 + i) for i in (10, 11)]  # 2 h behind the stream's newest
            loki_reason = "too_far_behind"
        else:
            real_loki.set_limits(tenant, max_label_names_per_series=4)
            options["loki_labels"] = {"team": "payments", "region": "eu"}  # + env, provider, level: 5 (of 4)
            good = []
            bad = [record(i) for i in range(10, 16)]
            loki_reason = "max_label_names_per_series"
        sink = harness.sink(real_loki.url, loki_tenant=tenant, loki_batch_wait_seconds=5.0, **options)
        if case == "out_of_order":  # the stream's newest entry first, then the late ones in a later push
            sink.emit(record(99, ts_ns=now + 10**9))
            assert sink.flush(10)
            good.append(99)
        for i in good[:10]:
            sink.emit(record(i, ts_ns=now + i))
        for r in bad:
            sink.emit(r)
        assert sink.flush(10)
        refused = real_loki.discarded(tenant)
        assert refused.get(loki_reason) == len(bad), refused
        assert harness.value("llmmetrics_records_dropped_total", sink="loki", reason=case) == len(bad)
        assert harness.value("llmmetrics_records_dropped_total", sink="loki", reason="rejected") == 0
        if good:
            assert_exactly_once(real_loki.wait_for_count(tenant, ALL, len(good)), good)

    def test_a_refusal_is_logged_once_per_reason_while_shipping_goes_on(
            self, real_loki: LokiServer, tenant: str, harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
        """Two batches each with an over-long line: two drops, one warning (Loki's texts differ per entry)."""
        caplog.set_level(logging.WARNING, logger="llmmetrics.loki")
        real_loki.set_limits(tenant, max_line_size="2KB")
        sink = harness.sink(real_loki.url, loki_tenant=tenant, loki_batch_wait_seconds=5.0)
        for first in (0, 10):
            for i in range(first, first + 10):
                sink.emit(padded(i, 3000) if i == first + 3 else record(i))
            assert sink.flush(10)
        assert_exactly_once(real_loki.wait_for_count(tenant, ALL, 18), [i for i in range(20) if i not in (3, 13)])
        assert harness.value("llmmetrics_records_dropped_total", sink="loki", reason="line_too_long") == 2
        assert harness.value("llmmetrics_loki_pushes_total", outcome="rejected") == 2
        (warning,) = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert "1 line_too_long of a batch of 10" in warning and "max entry size '2048' bytes" in warning


class TestProxyAndTLS:
    def test_pushes_go_through_the_http_proxy_unless_no_proxy_names_the_host(
            self, real_loki: LokiServer, tenant: str, harness: Harness, proxy: TinyProxy,
            no_proxy_environment: pytest.MonkeyPatch) -> None:
        """HTTP_PROXY: the push is an absolute-URI POST to tinyproxy, stored by Loki; NO_PROXY=127.0.0.1 bypasses it."""
        no_proxy_environment.setenv("HTTP_PROXY", proxy.url)
        sink = harness.sink(real_loki.url, loki_tenant=tenant)
        sink.emit(record(1))
        assert sink.flush(10)
        push = f"POST {real_loki.url}/loki/api/v1/push"
        assert wait_until(lambda: any(r.startswith(push) for r in proxy.requests()), 10), proxy.requests()
        real_loki.wait_for_count(tenant, ALL, 1)
        no_proxy_environment.setenv("NO_PROXY", "127.0.0.1")
        seen = len(proxy.requests())
        direct = harness.sink(real_loki.url, loki_tenant=tenant)
        direct.emit(record(2))
        assert direct.flush(10)
        real_loki.wait_for_count(tenant, ALL, 2)
        assert len(proxy.requests()) == seen

    @pytest.mark.parametrize("how", ["loki_ca_file", "REQUESTS_CA_BUNDLE", "HTTPS_PROXY"])
    def test_pushes_to_a_loki_with_a_private_ca(self, tls_loki: LokiServer, tenant: str, harness: Harness,
                                                proxy: TinyProxy, no_proxy_environment: pytest.MonkeyPatch,
                                                how: str) -> None:
        """HTTPS with the CA from loki_ca_file or REQUESTS_CA_BUNDLE, also tunnelled (CONNECT) through the proxy."""
        assert tls_loki.tls is not None
        options: dict[str, Any] = {}
        if how == "REQUESTS_CA_BUNDLE":
            no_proxy_environment.setenv("REQUESTS_CA_BUNDLE", str(tls_loki.tls.ca))
        else:
            options["loki_ca_file"] = str(tls_loki.tls.ca)
        if how == "HTTPS_PROXY":
            no_proxy_environment.setenv("HTTPS_PROXY", proxy.url)
        sink = harness.sink(tls_loki.url, loki_tenant=tenant, **options)
        sink.emit(record(1))
        assert sink.flush(10)
        tls_loki.wait_for_count(tenant, ALL, 1)
        if how == "HTTPS_PROXY":
            assert f"CONNECT 127.0.0.1:{tls_loki.http_port} HTTP/1.0" in proxy.requests()

    def test_an_unknown_ca_is_a_retried_connection_error_not_a_silent_loss(
            self, tls_loki: LokiServer, tenant: str, harness: Harness, no_proxy_environment: pytest.MonkeyPatch,
            caplog: pytest.LogCaptureFixture) -> None:
        """Without the CA the handshake fails: a connection error, retried and logged; at close the record is counted."""
        sink = harness.sink(tls_loki.url, loki_tenant=tenant)
        sink.emit(record(1))
        assert sink.flush(0.5) is False
        assert wait_until(lambda: harness.value("llmmetrics_export_errors_total", sink="loki", reason="connection"), 10)
        assert "CERTIFICATE_VERIFY_FAILED" in caplog.text
        assert tls_loki.entries(tenant, ALL) == []
        sink.close(0.1)
        assert harness.value("llmmetrics_records_dropped_total", sink="loki", reason="shutdown") == 1
