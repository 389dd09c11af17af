"""Draw a panel as inline SVG with pygal: no script, no network, colours from the page's CSS.

pygal (the ``report`` extra) writes SVG from pure Python, a few tens of KB per chart, and styles it with CSS
classes; every colour given to it here is a CSS variable (``var(--c0)`` …), so the page's
``prefers-color-scheme`` rules recolour the charts for light and dark without drawing them twice. Its
tooltip script would be fetched from the web, so none is asked for (``js=[]``) and the inline script
holding the tooltips' config is taken out: the page runs no script, and the numbers a reader needs are in
the tables beside the charts.

>>> from llmmetrics.report.panels import PANELS, PanelData, Series
>>> svg = render_chart(PanelData(PANELS[1], ["12:00", "12:01"], [Series("error rate", [2.0, 7.5])], 5.0,
...                              "5% threshold", "1 min buckets"), colours={})
>>> svg.startswith("<svg") and "pygal" in svg
True
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import pygal
from pygal.style import Style

from .panels import PanelData

__all__ = ["PALETTE_SIZE", "render_chart", "series_colour", "value_formatter"]

#: Series colours ``var(--c0)`` … ``var(--c{PALETTE_SIZE-1})``, defined by the page for light and dark.
PALETTE_SIZE = 8
_WIDTH, _HEIGHT = 640, 300


def value_formatter(unit: str) -> Callable[[float | None], str]:
    """How an axis label or value of a panel of ``unit`` reads."""

    def per_minute(value: float | None) -> str:
        return "" if value is None else f"{value:,.0f}" if value >= 10 or value == 0 else f"{value:.2g}"

    def percent(value: float | None) -> str:
        return "" if value is None else f"{value:.3g} %"

    def usd(value: float | None) -> str:
        if value is None:
            return ""
        if value == 0:
            return "$0"
        return f"${value:.6f}".rstrip("0") if value < 0.01 else f"${value:,.4g}"

    def seconds(value: float | None) -> str:
        return "" if value is None else f"{value * 1000:.0f} ms" if 0 < value < 1 else f"{value:.3g} s"

    return {"per_minute": per_minute, "percent": percent, "usd": usd, "seconds": seconds}[unit]


def _style(colours: list[str]) -> Style:
    return Style(
        background="transparent", plot_background="transparent",
        foreground="var(--muted)", foreground_strong="var(--fg)", foreground_subtle="var(--grid)",
        colors=tuple(colours), opacity=".18", opacity_hover=".3", stroke_opacity="1", stroke_opacity_hover="1",
        font_family="inherit", label_font_size=12, major_label_font_size=12, legend_font_size=13,
        value_font_size=12, tooltip_font_size=12, title_font_size=14, no_data_font_size=18,
        guide_stroke_color="var(--grid)", guide_stroke_dasharray="none",
        major_guide_stroke_color="var(--grid)", major_guide_stroke_dasharray="none", transition="0ms",
    )


def series_colour(name: str, colours: Mapping[str, int]) -> str:
    """The CSS colour of a series: its palette entry when ``colours`` has one (models), else the accent."""
    return f"var(--c{colours[name] % PALETTE_SIZE})" if name in colours else "var(--accent)"


def render_chart(data: PanelData, colours: Mapping[str, int]) -> str:
    """The panel as an ``<svg>`` element: one line per series (stacked areas for request rates), the
    threshold dashed. ``colours`` maps a series name to its palette index, so a model keeps its colour
    from panel to panel (the page draws the legend, as HTML that wraps)."""
    series_colours = [series_colour(s.name, colours) for s in data.series]
    if data.threshold is not None:
        series_colours.append("var(--threshold)")
    chart_type = pygal.StackedLine if data.panel.stacked else pygal.Line
    chart = chart_type(
        style=_style(series_colours), width=_WIDTH, height=_HEIGHT, js=[], disable_xml_declaration=True,
        fill=data.panel.stacked, show_dots=False, allow_interruptions=True, include_x_axis=True,
        show_x_guides=False, show_y_guides=True, show_minor_x_labels=False, x_labels_major_count=6,
        x_label_rotation=0, truncate_label=-1, show_legend=False, stroke_style={"width": 1.8, "linejoin": "round"},
        value_formatter=value_formatter(data.panel.unit), no_data_text="no calls in range",
        margin_top=8, margin_right=30, margin_left=4, margin_bottom=4, spacing=8,
    )
    chart.x_labels = data.labels
    for series in data.series:
        chart.add(series.name, series.values)
    if data.threshold is not None:
        chart.add(data.threshold_label, [data.threshold] * len(data.labels), fill=False,
                  stroke_style={"width": 1.5, "dasharray": "6,4"})
    return _SCRIPT.sub("", chart.render(is_unicode=True))


#: pygal always writes one ``<script>`` with the chart's config for its tooltip code; the page runs no
#: script (its CSP forbids them), so it is left out rather than refused with a console error. Text inside
#: it is XML-escaped, so the first ``</script>`` is its end.
_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.DOTALL)
