"""docs/report.md says what the code does: its commands parse, its figures are the code's constants, its
message is the command's, its screenshots exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from llmmetrics.cli import build_parser
from llmmetrics.report import buckets, data, page, quantiles
from llmmetrics.report.command import DEFAULT_OUTPUT, EXTRA_MISSING

DOCS = Path(__file__).resolve().parents[2] / "docs"
TEXT = (DOCS / "report.md").read_text(encoding="utf-8")


def test_every_report_command_in_the_page_parses() -> None:
    """Each `llmmetrics report …` line of a shell block is accepted by the real parser."""
    commands = [line.split("#")[0] for block in re.findall(r"```sh\n(.*?)```", TEXT, re.S)
                for line in block.splitlines() if line.startswith("llmmetrics report")]
    assert len(commands) >= 2
    for command in commands:
        args = build_parser().parse_args(shlex.split(command)[1:])
        assert args.command == "report"


def test_stated_figures_are_the_code_constants() -> None:
    """Bucket ladder, point bounds, model, user and flag caps and the sketch's accuracy are as written."""
    text = " ".join(TEXT.split())
    assert ", ".join(buckets.format_width(seconds) for seconds in buckets.LADDER) in text
    assert f"by {buckets.MAX_POINTS} and rounds up" in text
    assert f"hold {buckets.MIN_CALLS_PER_BUCKET} calls" in text and f"as long as {buckets.MIN_POINTS} points" in text
    assert f"Up to {buckets.MAX_MODELS} models" in text
    assert f"the {page.USERS_SHOWN} largest" in text and f"up to {data.MAX_FLAGS} flags" in text
    assert f"{quantiles.RELATIVE_ACCURACY * 100:g} % relative accuracy" in text
    assert f"`{DEFAULT_OUTPUT}`" in text


def test_the_missing_extra_message_is_quoted_as_printed() -> None:
    """The page shows the message the command prints without pygal."""
    assert EXTRA_MISSING.format(name="pygal") in TEXT


def test_screenshots_exist() -> None:
    """The screenshots the page (and the README) show are there, as PNG."""
    for name in re.findall(r"\]\((report[\w-]*\.png)\)", TEXT):
        assert (DOCS / name).read_bytes()[:4] == b"\x89PNG"
    assert "report.png" in TEXT and "report-dark.png" in TEXT
