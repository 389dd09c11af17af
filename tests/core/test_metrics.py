"""Metric families: names, buckets with the SLO as exact bounds, bounded model cardinality."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry
from prometheus_client.samples import Exemplar

from llmmetrics.metrics import CHUNK_BUCKETS, TOKEN_BUCKETS, LLMMetrics, SelfMetrics, duration_buckets


def test_duration_buckets_follow_genai_conventions_and_include_thresholds() -> None:
    """0.01 s doubling to 327.68 s, plus the SLO and slow-call thresholds as exact bounds."""
    buckets = duration_buckets(2.0, 3.0)
    assert buckets[0] == 0.01 and buckets[-1] == 327.68
    assert 81.92 in buckets and 2.0 in buckets and 3.0 in buckets
    assert list(buckets) == sorted(set(buckets))
    assert duration_buckets(0.64) == duration_buckets()  # already a bound: not duplicated


def test_token_buckets_are_powers_of_four() -> None:
    """Tokens per call: 1, 4, 16, … 4**12."""
    assert TOKEN_BUCKETS == tuple(float(4**i) for i in range(13))


def test_chunk_buckets_are_genai_conventions_with_milliseconds_below() -> None:
    """Time per output chunk: OpenTelemetry's 10 ms … 2.5 s bounds, plus 1, 2.5 and 5 ms, in order."""
    assert CHUNK_BUCKETS[:4] == (0.001, 0.0025, 0.005, 0.01) and CHUNK_BUCKETS[-1] == 2.5
    assert list(CHUNK_BUCKETS) == sorted(set(CHUNK_BUCKETS))


def test_zero_optional_token_counts_are_not_counted_but_nonzero_ones_are() -> None:
    """Input and output are always counted; cached, reasoning and cache-write counts only when non-zero, and
    counts past the token types (the 1-hour cache-write share) never become a token_type."""
    registry = CollectorRegistry()
    series = LLMMetrics(registry).series("p", "m", "chat")
    series.succeeded(0.1, Exemplar({}, 0.1, 0.0), None, None, (0, 0, 0, 0, 0, 0), None, None)
    series.succeeded(0.1, Exemplar({}, 0.1, 0.0), None, None, (9, 4, 3, 2, 5, 5), None, None)
    labels = {"provider": "p", "model": "m", "operation": "chat"}
    counts = {t: registry.get_sample_value("llm_request_tokens_count", {**labels, "token_type": t})
              for t in ("input", "output", "cached_input", "reasoning", "cache_write")}
    assert counts == {"input": 2, "output": 2, "cached_input": 1, "reasoning": 1, "cache_write": 1}
    assert registry.get_sample_value("llm_tokens_total", {**labels, "token_type": "cache_write"}) == 5


def test_configured_slo_is_an_exact_histogram_bound() -> None:
    """The exposed histogram has an le bucket equal to the configured SLO, so alert rules can read it."""
    registry = CollectorRegistry()
    metrics = LLMMetrics(registry, latency_slo_seconds=1.5, slow_call_seconds=4.0)
    series = metrics.series("openai", "gpt-4o-mini", "chat")
    for latency in (1.4, 1.6):
        series.start()
        series.succeeded(latency, Exemplar({"trace_id": "a" * 32}, latency, 0.0), None, None, None, None, None)
    labels = {"provider": "openai", "model": "gpt-4o-mini", "operation": "chat", "status": "ok"}
    assert registry.get_sample_value("llm_request_duration_seconds_bucket", {**labels, "le": "1.5"}) == 1
    assert registry.get_sample_value("llm_request_duration_seconds_bucket", {**labels, "le": "4.0"}) == 2
    assert registry.get_sample_value("llm_request_duration_seconds_bucket", {**labels, "le": "+Inf"}) == 2
    assert registry.get_sample_value("llm_request_duration_seconds_sum", labels) == 3.0


def test_series_bucketing_matches_prometheus_client() -> None:
    """The series' bisect-and-add puts every value in the same bucket as prometheus_client's own observe."""
    registry = CollectorRegistry()
    metrics = LLMMetrics(registry)
    series = metrics.series("p", "m", "chat")
    reference = metrics.duration.labels("p", "m", "chat", "error")
    values = [0.0, 0.01, 0.0100001, 0.5, 2.0, 2.0000001, 3.0, 81.92, 327.68, 400.0, 1e9]
    for v in values:
        series.succeeded(v, Exemplar({}, v, 0.0), None, None, None, None, None)
        reference.observe(v)
    for bound in metrics.buckets + (float("inf"),):
        le = "+Inf" if bound == float("inf") else str(bound)
        base = {"provider": "p", "model": "m", "operation": "chat", "le": le}
        assert (registry.get_sample_value("llm_request_duration_seconds_bucket", {**base, "status": "ok"}) ==
                registry.get_sample_value("llm_request_duration_seconds_bucket", {**base, "status": "error"}))


def test_concurrent_updates_are_not_lost() -> None:
    """Eight threads recording at once: every count arrives (one lock per series guards all its values)."""
    registry = CollectorRegistry()
    series = LLMMetrics(registry).series("p", "m", "chat")

    def work() -> None:
        for _ in range(5000):
            series.start()
            series.end()
            series.succeeded(0.1, Exemplar({}, 0.1, 0.0), None, 0.02, (3, 2, 0, 0, 1, None), 0.5, None)
    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    labels = {"provider": "p", "model": "m", "operation": "chat"}
    assert registry.get_sample_value("llm_requests_total", {**labels, "status": "ok"}) == 40000
    assert registry.get_sample_value("llm_tokens_total", {**labels, "token_type": "input"}) == 120000
    assert registry.get_sample_value("llm_tokens_total", {**labels, "token_type": "cache_write"}) == 40000
    assert registry.get_sample_value("llm_cost_usd_total", labels) == 20000
    assert registry.get_sample_value("llm_time_per_output_chunk_seconds_count", labels) == 40000
    assert registry.get_sample_value("llm_in_flight_requests", {"provider": "p", "model": "m"}) == 0


def test_model_label_cardinality_is_capped() -> None:
    """Beyond max_models distinct models new ones become 'other', and each such call is counted."""
    registry = CollectorRegistry()
    self_metrics = SelfMetrics(registry)
    metrics = LLMMetrics(registry, max_models=3, self_metrics=self_metrics)
    labels = [metrics.model_label(f"typo-{i}") for i in range(10_000)]
    assert labels[:3] == ["typo-0", "typo-1", "typo-2"] and set(labels[3:]) == {"other"}
    assert metrics.model_label("typo-1") == "typo-1"
    assert metrics.model_label(" GPT-4o-Mini ") == "other"
    assert registry.get_sample_value("llmmetrics_model_overflow_total") == 10_000 - 3 + 1
    assert len(metrics._model_labels) <= 4 * 3


def test_series_for_a_requested_model_counts_every_overflowing_call() -> None:
    """The call path's cached lookup gives the capped series and counts each overflowing call exactly once."""
    registry = CollectorRegistry()
    metrics = LLMMetrics(registry, max_models=2, self_metrics=SelfMetrics(registry))
    picked = [metrics.series_for("openai", name, "chat") for name in ("a", "b", "c", "a", "c", "d", "c")]
    assert [s.model_label for s in picked] == ["a", "b", "other", "a", "other", "other", "other"]
    assert picked[2] is picked[4] is picked[5]
    assert registry.get_sample_value("llmmetrics_model_overflow_total") == 4
    for i in range(10_000):
        metrics.series_for("openai", f"typo-{i}", "chat")
    assert len(metrics._requested) <= 16 * 2 and len(metrics._series) == 3


def test_model_names_are_normalised() -> None:
    """Case and surrounding spaces do not make new series; non-strings and empty names are handled."""
    metrics = LLMMetrics(CollectorRegistry())
    assert metrics.model_label(" GPT-4o-Mini ") == metrics.model_label("gpt-4o-mini") == "gpt-4o-mini"
    assert metrics.model_label(None) == "none" and metrics.model_label("") == "unknown"
    assert len(metrics.model_label("x" * 500)) == 100
