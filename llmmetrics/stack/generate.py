"""``llmmetrics generate``: write the dashboards, rule files and the files derived from them.

Everything is generated from one ``StackOptions`` and written deterministically (sorted JSON keys, fixed
YAML order), so the committed files can be checked for drift by regenerating and comparing bytes::

    llmmetrics generate --out . --error-rate-threshold 0.02 --daily-budget-usd 50
    llmmetrics generate --check          # exit 1 if the committed files differ from the generated ones
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmmetrics.stack.options import StackOptions


def outputs() -> dict[str, Callable[[StackOptions], str]]:
    """Generated files, relative to the output directory, and how each is rendered.

    Imported here, not at module level, so that the ``llmmetrics`` command (and ``llmmetrics demo``) works
    without the ``stack`` extra; only ``generate`` needs grafanalib and PyYAML.
    """
    try:
        from llmmetrics.stack import dashboards, provisioning, rules
        from llmmetrics.stack.yamlfmt import dump_yaml
    except ImportError as exc:
        raise SystemExit(f"llmmetrics generate needs the stack extra ({exc.name} is missing): "
                         "pip install 'llmmetrics[stack]'") from None
    return {
        "grafana/dashboards/llm-overview.json": lambda o: _json(dashboards.overview(o)),
        "grafana/dashboards/llm-traces.json": lambda o: _json(dashboards.traces(o)),
        f"prometheus/rules/{rules.RECORDING_FILE}": lambda o: dump_yaml(rules.recording_rules_file(o), rules.HEADER),
        f"prometheus/rules/{rules.ALERTS_FILE}": lambda o: dump_yaml(rules.alert_rules_file(o), rules.HEADER),
        provisioning.FILE: lambda o: dump_yaml(provisioning.datasources_file(o), provisioning.HEADER),
    }


def _json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render(options: StackOptions) -> dict[str, str]:
    """Every generated file's text by relative path, without touching the disk."""
    return {path: make(options) for path, make in outputs().items()}


def generate(options: StackOptions, out_dir: Path) -> list[Path]:
    """Write every generated file under ``out_dir`` and return their paths."""
    written = []
    for relative, text in render(options).items():
        path = out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def drifted(options: StackOptions, out_dir: Path) -> list[str]:
    """Relative paths whose content under ``out_dir`` differs from what ``options`` generate."""
    with tempfile.TemporaryDirectory() as tmp:
        generate(options, Path(tmp))
        return [rel for rel in outputs()
                if not (out_dir / rel).is_file() or (out_dir / rel).read_bytes() != (Path(tmp) / rel).read_bytes()]


def options_from_args(args: argparse.Namespace) -> StackOptions:
    return StackOptions(
        job=args.job, error_rate_threshold=args.error_rate_threshold, latency_slo_seconds=args.latency_slo_seconds,
        spend_ratio=args.spend_ratio, daily_budget_usd=args.daily_budget_usd, availability_slo=args.availability_slo,
        tempo_uid=args.tempo_uid, tempo_url=args.tempo_url,
    )


def _run(args: argparse.Namespace) -> int:
    try:
        options = options_from_args(args)
    except ValueError as exc:
        print(f"llmmetrics generate: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    if args.check:
        stale = drifted(options, out)
        for rel in stale:
            print(f"out of date: {out / rel} (run `llmmetrics generate` and commit the result)", file=sys.stderr)
        return 1 if stale else 0
    for path in generate(options, out):
        print(path)
    return 0


def add_command(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``generate`` on the ``llmmetrics`` command line."""
    defaults = StackOptions()
    parser = subparsers.add_parser(
        "generate", help="write the Grafana dashboards and Prometheus rules",
        description="Generate grafana/dashboards/*.json and prometheus/rules/*.yml from thresholds.")
    parser.add_argument("--out", default=".", help="directory to write into (default: current directory)")
    parser.add_argument("--job", default=defaults.job,
                        help="regular expression for the Prometheus job (service) the rules watch (default: %(default)s)")
    parser.add_argument("--error-rate-threshold", type=float, default=defaults.error_rate_threshold,
                        help="error ratio above which LLMHighErrorRate fires (default: %(default)s)")
    parser.add_argument("--latency-slo-seconds", type=float, default=defaults.latency_slo_seconds,
                        help="latency SLO bound; must equal the instrumented latency_slo_seconds bucket (default: %(default)s)")
    parser.add_argument("--spend-ratio", type=float, default=defaults.spend_ratio,
                        help="LLMDailySpendHigh fires when 24h spend exceeds this times the forecast (default: %(default)s)")
    parser.add_argument("--daily-budget-usd", type=float, default=None,
                        help="daily spend forecast in USD (default: the trailing 7-day average)")
    parser.add_argument("--availability-slo", type=float, default=defaults.availability_slo,
                        help="availability SLO for the error-budget burn alerts (default: %(default)s)")
    parser.add_argument("--tempo-uid", default=None,
                        help="also link exemplars to the Tempo datasource of this uid (default: Loki only)")
    parser.add_argument("--tempo-url", default=None,
                        help="provision that Tempo datasource at this URL, e.g. http://tempo:3200 (default: it exists)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the files in --out differ")
    parser.set_defaults(func=_run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmmetrics")
    add_command(parser.add_subparsers(required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
