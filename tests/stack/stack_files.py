"""Read the generated stack files the way the servers do, for the tests."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.stack.shared import REPO

DASHBOARD_DIR = REPO / "grafana" / "dashboards"
RULES_DIR = REPO / "prometheus" / "rules"

#: Sample values for Grafana's template variables, so queries can be parsed and evaluated.
SAMPLE_VARIABLES = {
    "service": "llm-app",
    "env": ".*",
    "model": ".*",
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    "feature_flag": "new_prompt",
    "datasource": "prometheus",
    "__range": "1h",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__auto": "1m",
}


def substitute(query: str, values: dict[str, str] | None = None) -> str:
    """Replace ``$name`` and ``${name}`` template variables with sample values."""
    table = {**SAMPLE_VARIABLES, **(values or {})}

    def repl(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in table:
            raise KeyError(f"no sample value for template variable {name!r} in {query!r}")
        return table[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", repl, query)


def load_dashboards(directory: Path = DASHBOARD_DIR) -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.json"))}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every non-row panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def targets(dashboard: dict[str, Any], plugin: str) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(panel, target) pairs whose datasource plugin type is ``plugin`` ("prometheus" or "loki")."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            source = target.get("datasource") or panel.get("datasource") or {}
            if source.get("type") == plugin:
                yield panel, target


def load_rule_groups(directory: Path = RULES_DIR) -> list[dict[str, Any]]:
    groups = []
    for path in sorted(directory.glob("*.yml")):
        groups.extend(yaml.safe_load(path.read_text(encoding="utf-8"))["groups"])
    return groups


def alerts(directory: Path = RULES_DIR) -> list[dict[str, Any]]:
    return [rule for group in load_rule_groups(directory) for rule in group["rules"] if "alert" in rule]
