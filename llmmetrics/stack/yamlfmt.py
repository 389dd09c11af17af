"""Deterministic YAML output for generated files.

Multi-line strings (PromQL expressions, descriptions) become literal blocks so the committed files read like
hand-written ones, and nothing is folded at a line width, so regenerating gives byte-identical output.
"""

from __future__ import annotations

from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    """SafeDumper that keeps key order and writes multi-line strings as literal blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(data: Any, header: str) -> str:
    """Serialise ``data`` after a comment header (each header line is prefixed with ``# ``)."""
    comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    body = yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=1_000_000, allow_unicode=True,
                     default_flow_style=False, indent=2)
    return comment + body
