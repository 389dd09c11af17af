"""The reference pages match the code: every Config field is in docs/configuration.md with its variable, the
messages quoted there are the ones llmmetrics prints, and docs/records.md names every field of a record."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from llmmetrics import Config, ConfigError
from llmmetrics.config import env_var, unknown_variables
from tests.support.docs import fenced_blocks

ROOT = Path(__file__).resolve().parents[2]
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
RECORDS = (ROOT / "docs" / "records.md").read_text(encoding="utf-8")


def _table_rows(text: str, first_header: str) -> list[list[str]]:
    """The rows of the markdown table whose header starts with ``first_header``, as cells."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def test_every_config_field_is_documented_with_its_variable_and_default() -> None:
    """docs/configuration.md has one row per Config field, no row for anything else, each with its
    LLMMETRICS_* variable (or saying it is an argument only) and a default."""
    rows = {row[0].strip("`"): row for row in _table_rows(CONFIGURATION, "field")}
    fields = {f.name: f for f in dataclasses.fields(Config)}
    assert list(rows) == list(fields)
    for name, (_, variable, default, accepted, meaning) in rows.items():
        kind = fields[name].metadata["kind"]
        assert variable == (f"`{env_var(name)}`" if kind.from_env else "— (argument only)"), name
        assert default and accepted and meaning, name


def test_the_defaults_in_the_table_are_the_defaults() -> None:
    """Where the table gives a plain value as the default, it is the field's default."""
    config = Config()
    for name, _, default, *_ in _table_rows(CONFIGURATION, "field"):
        plain = re.fullmatch(r"`([^`]*)`(?: \(.*\))?", default)
        if plain:
            value = getattr(config, name.strip("`"))
            spellings = {str(value).lower() if isinstance(value, bool) else str(value)}
            if type(value) is int:
                spellings.add(oct(value))  # a file mode
            assert plain.group(1) in spellings, name


def _quoted(prefix: str) -> list[str]:
    return [block for block in fenced_blocks(CONFIGURATION) if block.startswith(prefix)]


def test_the_messages_quoted_are_the_ones_printed() -> None:
    """The ConfigError, the lazy-path report and the unknown-variable warning in the page are verbatim."""
    with pytest.raises(ConfigError) as caught:
        Config.from_env({"LLMMETRICS_SAMPLE_SUCCESS_RATIO": "abc"})
    assert _quoted("llmmetrics.config.ConfigError: ") == [f"llmmetrics.config.ConfigError: {caught.value}"]
    lazy, unknown = _quoted("llmmetrics: ")
    assert lazy == f"llmmetrics: {caught.value}; using the default (1.0) instead"
    assert unknown == "llmmetrics: " + unknown_variables({"LLMMETRICS_SAMPLE_RATE": "0.1"})["LLMMETRICS_SAMPLE_RATE"]


def test_every_record_field_is_documented(traced: Any, client: Any) -> None:
    """The field table of docs/records.md names every key of a real call record (and `original_sizes`, which
    only a cut record has), and nothing else."""
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    record = traced.only_record()
    documented = {name for row in _table_rows(RECORDS, "field") for name in re.findall(r"`(\w+)`", row[0])}
    assert documented - set(record) == {"original_sizes"}
    assert set(record) - documented == set()
