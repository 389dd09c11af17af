"""The report as a person sees it: opened in a real headless Chromium with no network, it logs no error,
requests nothing, draws data in every panel (the thresholds dashed), and follows the reader's light or dark
theme. The demo's own report is checked the same way."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmmetrics.cli import main as llmmetrics_main
from llmmetrics.report.panels import PANELS
from tests.support.chromium import Chromium, Page
from tests.support.loki_server import free_port
from tests.support.workload import Workload

REPO = Path(__file__).resolve().parents[2]

#: Per panel: how many series it draws, the points of each, its width on screen, its colour and dash.
PANELS_DRAWN = """
Array.from(document.querySelectorAll('figure.panel')).map(figure => ({
  id: figure.id,
  series: Array.from(figure.querySelectorAll('svg .series path.line')).map(path => ({
    points: path.getAttribute('d').replace(/[ML]/g, ' ').trim().split(/\\s+/).length / 2,
    width: path.getBBox().width,
    stroke: getComputedStyle(path).stroke,
    dashed: getComputedStyle(path).strokeDasharray !== 'none',
  })),
  svgWidth: figure.querySelector('svg').getBoundingClientRect().width,
}))
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    with Chromium(tmp_path_factory.mktemp("chromium")) as chromium:
        yield chromium


@pytest.fixture
def page(browser: Chromium) -> Iterator[Page]:
    with browser.page() as tab:
        yield tab


@pytest.fixture(scope="module")
def workload_report(workload: Workload, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("browser") / "report.html"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert llmmetrics_main(["report", "--file", str(workload.path), "-o", str(path)]) == 0
    return path


def assert_every_panel_drew(page: Page, *, models: int | None = None) -> list[dict[str, Any]]:
    drawn = page.evaluate(PANELS_DRAWN)
    assert [panel["id"] for panel in drawn] == [f"panel-{p.key}" for p in PANELS]
    for panel, spec in zip(drawn, PANELS):
        data = [s for s in panel["series"] if not s["dashed"]]
        assert data, f"{panel['id']} drew no series"
        assert all(s["points"] >= 2 and s["width"] > 0 for s in data), f"{panel['id']}: {panel['series']}"
        dashed = [s for s in panel["series"] if s["dashed"]]
        assert len(dashed) == (1 if spec.threshold else 0), f"{panel['id']}: threshold line"
        assert panel["svgWidth"] > 400, "the chart is squeezed"
    if models is not None:
        assert len(drawn[0]["series"]) == models
    return drawn


def test_workload_report_renders_without_errors_and_draws_every_panel(page: Page, workload_report: Path) -> None:
    """No console error, no request, data in each of the four panels, the totals shown as numbers."""
    page.open(workload_report.as_uri())
    assert page.problems() == []
    assert_every_panel_drew(page, models=3)  # gpt-4o-mini, gpt-4o, text-embedding-3-small
    assert page.evaluate("document.querySelector('[data-total=calls] .value').textContent") == "21"
    trees = page.evaluate("Array.from(document.querySelectorAll('.tree pre')).map(p => p.textContent)")
    assert len(trees) == 1 and "← failed step" in trees[0]


def test_report_follows_light_and_dark(page: Page, workload_report: Path, tmp_path: Path) -> None:
    """prefers-color-scheme: dark turns the page and the chart lines dark-theme; light is light."""
    colours = "[getComputedStyle(document.body).backgroundColor, getComputedStyle(document.body).color]"
    page.prefer_dark(False)
    page.open(workload_report.as_uri())
    light_page, light_lines = page.evaluate(colours), [s["stroke"] for s in assert_every_panel_drew(page)[0]["series"]]
    page.screenshot(tmp_path / "light.png")
    page.prefer_dark(True)
    dark_page, dark_lines = page.evaluate(colours), [s["stroke"] for s in assert_every_panel_drew(page)[0]["series"]]
    page.screenshot(tmp_path / "dark.png")
    assert light_page == ["rgb(255, 255, 255)", "rgb(31, 35, 40)"]
    assert dark_page == ["rgb(13, 17, 23)", "rgb(230, 237, 243)"]
    assert light_lines != dark_lines and len(set(light_lines)) == len(light_lines)  # each model its own colour
    assert page.problems() == []
    for name in ("light.png", "dark.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_writes_a_report_that_renders(page: Page, tmp_path: Path) -> None:
    """`llmmetrics demo` ends by writing its report and printing the path; that page renders cleanly."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMMETRICS_")}
    done = subprocess.run(
        [sys.executable, "-m", "llmmetrics", "demo", "--duration", "6", "--no-latency", "--seed", "3", "--quiet",
         "--rate", "20", "--port", str(free_port())],
        cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = tmp_path / "llmmetrics-report.html"
    assert f"  this run as one HTML page:    {report} (open it in a browser)" in done.stdout.splitlines()
    assert report.stat().st_mode & 0o777 == 0o600
    page.open(report.as_uri())
    assert page.problems() == []
    assert_every_panel_drew(page)
