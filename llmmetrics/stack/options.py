"""Every threshold and selector of the generated stack, in one typed object.

Dashboards, alert rules and their tests are generated from one ``StackOptions`` so that a threshold drawn on
a panel is the threshold an alert fires at. Change a field (or pass the matching ``llmmetrics generate``
flag) and regenerate; never edit the generated JSON/YAML by hand.

Example::

    from pathlib import Path
    from llmmetrics.stack.options import StackOptions
    from llmmetrics.stack.generate import generate
    generate(StackOptions(error_rate_threshold=0.02, daily_budget_usd=50.0), Path("my-stack"))
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
_LABEL_VALUE_QUOTE = re.compile(r'["\\\n]')
_UID = re.compile(r"[A-Za-z0-9_-]{1,40}")
_HTTP_URL = re.compile(r"https?://[^\s\"'$]+")


@dataclass(frozen=True, kw_only=True)
class StackOptions:
    """Thresholds and selectors shared by dashboards and rules.

    ``job`` is a regular expression matched against Prometheus' ``job`` label (the scrape job, i.e. the
    service); it selects what the rules watch and is the default of the dashboards' ``service`` variable.

    ``tempo_uid`` (off by default) adds a second exemplar link, to the Tempo datasource of that uid: with
    OpenTelemetry tracing, an exemplar's ``trace_id`` is the request's trace in Tempo as well. ``tempo_url``
    also provisions that datasource (leave it unset when your Grafana already has it).
    """

    job: str = "llm-app"
    error_rate_threshold: float = 0.05
    min_requests: int = 10
    latency_slo_seconds: float = 2.0
    latency_slo_target: float = 0.95
    spend_ratio: float = 2.0
    daily_budget_usd: float | None = None
    min_daily_spend_usd: float = 1.0
    availability_slo: float = 0.99
    rate_limit_threshold: float = 0.10
    prometheus_uid: str = "prometheus"
    loki_uid: str = "loki"
    runbook_base_url: str = "https://github.com/llmmetrics/llmmetrics/blob/main/docs/runbooks.md"
    #: Evaluation interval of the 1-day/7-day spend recording rules (slow-moving, expensive windows).
    spend_rules_interval: str = "5m"
    #: When set, replaces every alert's ``for:`` (tests use "0s" so alerts fire on the first evaluation).
    for_override: str | None = None
    #: The uid of a Tempo datasource for exemplars to link to, next to Loki (None: no Tempo link).
    tempo_uid: str | None = None
    #: Tempo's query URL, to provision the ``tempo_uid`` datasource too (None: it exists already).
    tempo_url: str | None = None

    def __post_init__(self) -> None:
        ratios = {
            "error_rate_threshold": self.error_rate_threshold,
            "latency_slo_target": self.latency_slo_target,
            "availability_slo": self.availability_slo,
            "rate_limit_threshold": self.rate_limit_threshold,
        }
        for name, value in ratios.items():
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name} must be a ratio strictly between 0 and 1, got {value!r}")
        positive = {
            "latency_slo_seconds": self.latency_slo_seconds,
            "spend_ratio": self.spend_ratio,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        if self.daily_budget_usd is not None and not self.daily_budget_usd > 0:
            raise ValueError(f"daily_budget_usd must be positive when set, got {self.daily_budget_usd!r}")
        if self.min_requests < 1:
            raise ValueError(f"min_requests must be at least 1, got {self.min_requests!r}")
        if self.min_daily_spend_usd < 0:
            raise ValueError(f"min_daily_spend_usd must not be negative, got {self.min_daily_spend_usd!r}")
        for name in ("job", "prometheus_uid", "loki_uid"):
            value = getattr(self, name)
            if not value or _LABEL_VALUE_QUOTE.search(value):
                raise ValueError(f"{name} must be non-empty without quotes, backslashes or newlines, got {value!r}")
        if self.tempo_uid is not None and not _UID.fullmatch(self.tempo_uid):
            raise ValueError(f"tempo_uid must be a Grafana uid (up to 40 letters, digits, '-' or '_'), got "
                             f"{self.tempo_uid!r}")
        if self.tempo_url is not None:
            if self.tempo_uid is None:
                raise ValueError("tempo_url needs tempo_uid: the uid the provisioned Tempo datasource gets")
            if not _HTTP_URL.fullmatch(self.tempo_url):
                raise ValueError(f"tempo_url must be an http(s) URL, got {self.tempo_url!r}")
        if not _DURATION.match(self.spend_rules_interval):
            raise ValueError(f"spend_rules_interval must be a Prometheus duration, got {self.spend_rules_interval!r}")
        if self.for_override is not None and not (self.for_override == "0s" or _DURATION.match(self.for_override)):
            raise ValueError(f"for_override must be a Prometheus duration like '0s' or '1m', got {self.for_override!r}")

    @property
    def error_budget(self) -> float:
        """The availability SLO's error budget as a ratio (0.01 for a 99 % SLO)."""
        return round(1.0 - self.availability_slo, 10)

    def runbook_url(self, alertname: str) -> str:
        """Link to the alert's section of docs/runbooks.md (GitHub anchors are the lower-cased heading)."""
        return f"{self.runbook_base_url}#{alertname.lower()}"


def le_matcher(bound: float) -> str:
    """A PromQL matcher for the histogram bucket whose upper bound is exactly ``bound``.

    prometheus_client writes ``le="2.0"`` (OpenMetrics and its text format alike). Other clients' classic text
    format writes ``le="2"`` (Go's client does): Prometheus 3 normalises that to ``le="2.0"`` on ingestion,
    Prometheus 2.x stores it as written. The regular expression matches both spellings, so the rules work with
    every client on either server (the stack tests check both on the real servers).
    """
    text = repr(float(bound))
    if text.endswith(".0"):
        pattern = re.escape(text[:-2]) + r"(\\.0)?"
    else:
        pattern = re.escape(text).replace("\\", "\\\\")
    return f'le=~"{pattern}"'
