"""``llmmetrics generate``: deterministic output, committed files in sync, option validation."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from llmmetrics.stack import generate
from llmmetrics.stack.options import StackOptions, le_matcher
from tests.stack.shared import REPO


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    generate.add_command(parser.add_subparsers())
    return parser.parse_args(["generate", *argv])


def test_committed_files_match_generator(tmp_path: Path) -> None:
    """Regenerating with default options reproduces every committed file byte for byte."""
    written = generate.generate(StackOptions(), tmp_path)
    assert len(written) == len(generate.outputs())
    differing = [str(p.relative_to(tmp_path)) for p in written
                 if (REPO / p.relative_to(tmp_path)).read_bytes() != p.read_bytes()]
    assert differing == [], "run `llmmetrics generate` and commit the result"


def test_generation_is_deterministic(tmp_path: Path) -> None:
    """Two runs give identical bytes (sorted keys, no timestamps or random ids)."""
    first = generate.render(StackOptions(daily_budget_usd=10))
    assert first == generate.render(StackOptions(daily_budget_usd=10))


def test_check_flag_reports_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`generate --check` exits 0 on fresh output and 1 naming the file after a hand edit."""
    assert _parse(["--out", str(tmp_path)]).func(_parse(["--out", str(tmp_path)])) == 0
    args = _parse(["--out", str(tmp_path), "--check"])
    assert args.func(args) == 0
    edited = tmp_path / "prometheus" / "rules" / "llmmetrics-alerts.rules.yml"
    edited.write_text(edited.read_text() + "# hand edit\n")
    assert args.func(args) == 1
    assert "llmmetrics-alerts.rules.yml" in capsys.readouterr().err


def test_cli_options_reach_the_rules(tmp_path: Path) -> None:
    """Thresholds given on the command line appear in the generated alert and recording rules."""
    args = _parse(["--out", str(tmp_path), "--error-rate-threshold", "0.02", "--daily-budget-usd", "75",
                   "--job", "chat-.*", "--latency-slo-seconds", "1.5"])
    assert args.func(args) == 0
    alerts = (tmp_path / "prometheus/rules/llmmetrics-alerts.rules.yml").read_text()
    recording = (tmp_path / "prometheus/rules/llmmetrics-recording.rules.yml").read_text()
    assert "job:llm_request_error_ratio:rate5m > 0.02" in alerts
    assert "0 * job:llm_cost_usd:increase1d + 75" in recording
    assert 'job=~"chat-.*"' in recording and 'le=~"1\\\\.5"' in recording


def test_invalid_options_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """An error ratio outside (0, 1) is a clear error (exit 2), not a broken rule file."""
    args = _parse(["--error-rate-threshold", "5"])
    assert args.func(args) == 2
    assert "error_rate_threshold must be a ratio" in capsys.readouterr().err
    with pytest.raises(ValueError, match="job must be non-empty"):
        StackOptions(job='a"b')


@pytest.mark.parametrize(("bound", "matches", "rejects"), [
    (2.0, ["2", "2.0"], ["20", "2.05", "12"]), (0.5, ["0.5"], ["0x5", "0.50"]), (1.5, ["1.5"], ["1.55"])])
def test_le_matcher_matches_both_spellings_of_a_bucket_bound(bound: float, matches: list[str],
                                                              rejects: list[str]) -> None:
    """The SLO bucket matcher accepts "2" (Prometheus 3) and "2.0" (client text format) and nothing else."""
    import re

    pattern = le_matcher(bound).split('"')[1].replace("\\\\", "\\")
    assert all(re.fullmatch(pattern, value) for value in matches)
    assert not any(re.fullmatch(pattern, value) for value in rejects)


def test_llmmetrics_command_runs_generate_check() -> None:
    """`python -m llmmetrics generate --check` (the installed command's entry) passes on the repository."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "llmmetrics", "generate", "--check", "--out", str(REPO)],
                            capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
