"""The alert and recording rules: checked and unit-tested by promtool, and complete for Alertmanager routing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from llmmetrics.stack import generate
from llmmetrics.stack.options import StackOptions
from tests.stack.shared import REPO
from tests.stack.stack_files import RULES_DIR, alerts
from tests.stack.tools import binary, run
from tests.support.binaries import Stack

RULE_TESTS = sorted((REPO / "prometheus" / "tests").glob("*.test.yml"))


def test_promtool_check_rules(stack: Stack) -> None:
    """promtool of each Prometheus line accepts every committed rule file."""
    files = sorted(str(p) for p in RULES_DIR.glob("*.yml"))
    assert files
    result = run([binary(stack.promtool), "check", "rules", *files])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", RULE_TESTS, ids=[p.name for p in RULE_TESTS])
def test_promtool_rule_unit_tests(test_file: Path, stack: Stack) -> None:
    """promtool's rule unit tests pass on each Prometheus line (each alert shown firing and not firing)."""
    result = run([binary(stack.promtool), "test", "rules", test_file.name], cwd=test_file.parent, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    """For every alert name there is a promtool case expecting it and one expecting silence."""
    firing: set[str] = set()
    silent: set[str] = set()
    for test_file in RULE_TESTS:
        for case in yaml.safe_load(test_file.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names - firing == set() and names - silent == set()


def test_every_alert_has_for_severity_and_annotations() -> None:
    """Every alert has `for:`, severity page|ticket, a service label and summary/description/runbook_url."""
    for rule in alerts():
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]
        assert rule["labels"]["service"] == "{{ $labels.job }}", rule["alert"]
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}, rule["alert"]
        assert rule["annotations"]["runbook_url"].endswith(f"docs/runbooks.md#{rule['alert'].lower()}")


def test_runbooks_have_a_section_per_alert() -> None:
    """docs/runbooks.md has a heading for each alert, so every runbook_url anchor resolves on GitHub."""
    headings = {h.strip().lower() for h in re.findall(r"^## (.+)$", (REPO / "docs" / "runbooks.md").read_text(),
                                                       re.MULTILINE)}
    assert {rule["alert"].lower() for rule in alerts()} <= headings


def test_for_override_makes_alerts_fire_immediately() -> None:
    """StackOptions(for_override="0s") (used by the end-to-end test) rewrites every `for:`."""
    text = generate.render(StackOptions(for_override="0s"))["prometheus/rules/llmmetrics-alerts.rules.yml"]
    assert {rule["for"] for rule in yaml.safe_load(text)["groups"][0]["rules"]} == {"0s"}


_BUDGET_TEST = """
rule_files: [rules/llmmetrics-recording.rules.yml, rules/llmmetrics-alerts.rules.yml]
evaluation_interval: 5m
group_eval_order: [llmmetrics-recording, llmmetrics-spend-recording, llmmetrics-alerts]
tests:
  - name: with a $10/day budget the forecast exists from day one; $2/h for a day is 48 > 2 x 10
    interval: 1h
    input_series:
      - series: 'llm_cost_usd_total{job="llm-app", env="prod", instance="app:8000", provider="openai", model="gpt-4o", operation="chat"}'
        values: '0+2x30'
    alert_rule_test:
      - eval_time: 2h
        alertname: LLMDailySpendHigh
        exp_alerts: []
      - eval_time: 26h
        alertname: LLMDailySpendHigh
        exp_alerts:
          - exp_labels: {severity: ticket, service: llm-app, job: llm-app, env: prod}
            exp_annotations:
              summary: llm-app spent $48.00 on LLM calls in 24 hours
              description: LLM spend of llm-app (prod) over the last 24 hours is more than 2 times the daily budget of $10.
              runbook_url: https://github.com/llmmetrics/llmmetrics/blob/main/docs/runbooks.md#llmdailyspendhigh
  - name: within budget ($0.30/h) -> nothing
    interval: 1h
    input_series:
      - series: 'llm_cost_usd_total{job="llm-app", env="prod", instance="app:8000", provider="openai", model="gpt-4o", operation="chat"}'
        values: '0+0.3x30'
    alert_rule_test:
      - eval_time: 26h
        alertname: LLMDailySpendHigh
        exp_alerts: []
"""


def test_spend_alert_with_a_budget_fires_on_a_fresh_install(tmp_path: Path, stack: Stack) -> None:
    """With --daily-budget-usd the forecast is the budget, so the spend alert needs no history."""
    for relative, text in generate.render(StackOptions(daily_budget_usd=10.0)).items():
        if relative.startswith("prometheus/rules/"):
            (tmp_path / "rules").mkdir(exist_ok=True)
            (tmp_path / "rules" / Path(relative).name).write_text(text)
    (tmp_path / "budget.test.yml").write_text(_BUDGET_TEST)
    result = run([binary(stack.promtool), "test", "rules", "budget.test.yml"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
