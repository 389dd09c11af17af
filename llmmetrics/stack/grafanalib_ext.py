"""The smallest extension of grafanalib 0.7.1 that emits today's Grafana dashboard model.

grafanalib 0.7.1 has no ``exemplar`` flag on Prometheus targets and no Loki target, and it still writes keys
from older Grafana versions (``rows``, ``style``, ``span``, ``editable`` on panels, ``useTags`` on
variables, ``time_options`` in the time picker, threshold steps with ``op``/``yaxis`` …). Grafana ignores
most of them, but its published JSON schema (additionalProperties: false) rejects them, and the schema is
the only contract we can check without a Grafana server. The classes here subclass grafanalib's and rewrite
only their JSON: legacy keys dropped, ``null`` values omitted, the options the current panel plugins
require filled in. Panel construction stays plain grafanalib.
"""

from __future__ import annotations

from typing import Any

import attr
from attr.validators import in_, instance_of, optional
from grafanalib import core

__all__ = [
    "Dashboard", "DatasourceVariable", "Logs", "LokiTarget", "PrometheusTarget", "QueryVariable", "RowPanel",
    "Stat", "Table", "TextboxVariable", "TimeSeries", "dashboard_json", "datasource_ref", "threshold_steps",
]

# Keys grafanalib writes on every panel that the current panel model no longer has.
_LEGACY_PANEL_KEYS = ("editable", "error", "height", "minSpan", "span", "columns", "fontSize", "color", "mappings")
_ROW_KEYS = ("type", "collapsed", "title", "datasource", "gridPos", "id", "panels", "repeat")
_LEGACY_DASHBOARD_KEYS = ("__inputs", "hideControls", "rows", "sharedCrosshair", "style", "gnetId", "id")
_LEGACY_VARIABLE_KEYS = ("useTags", "tagsQuery", "tagValuesQuery")
_SCHEMA_VERSION = 41  # Grafana 11.x dashboards


def _without_none(value: Any) -> Any:
    """Drop ``None`` members recursively: the schema types most optional fields without ``null``."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    """Resolve grafanalib objects inside ``value`` into plain JSON data."""
    to_json = getattr(value, "to_json_data", None)
    if to_json is not None:
        return _plain(to_json())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def threshold_steps(base: str, *steps: tuple[float, str]) -> list[dict[str, Any]]:
    """Threshold steps in the current model: ``{"color", "value"}``, the base step's value ``null``."""
    return [{"color": base, "value": None}] + [{"color": color, "value": value} for value, color in steps]


@attr.s
class PrometheusTarget(core.Target):
    """A Prometheus query; ``exemplar=True`` asks Grafana to fetch and draw exemplars with the series."""

    exemplar = attr.ib(default=False, validator=instance_of(bool))

    def to_json_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "datasource": self.datasource,
            "editorMode": "code",
            "expr": self.expr,
            "exemplar": self.exemplar,
            "format": self.format,
            "instant": self.instant,
            "legendFormat": self.legendFormat or None,
            "range": not self.instant,
            "refId": self.refId,
        }
        if self.interval:
            data["interval"] = self.interval
        return _without_none(data)


@attr.s
class LokiTarget:
    """A LogQL query: log lines (``queryType="range"`` in a logs panel) or a metric query."""

    expr = attr.ib(validator=instance_of(str))
    refId = attr.ib(default="A", validator=instance_of(str))
    datasource = attr.ib(default=None)
    queryType = attr.ib(default="range", validator=in_(("range", "instant")))
    legendFormat = attr.ib(default=None, validator=optional(instance_of(str)))
    maxLines = attr.ib(default=None, validator=optional(instance_of(int)))

    def to_json_data(self) -> dict[str, Any]:
        return _without_none({
            "datasource": self.datasource,
            "editorMode": "code",
            "expr": self.expr,
            "legendFormat": self.legendFormat,
            "maxLines": self.maxLines,
            "queryType": self.queryType,
            "refId": self.refId,
        })


class _CurrentPanelModel:
    """Mixin: rewrite grafanalib's panel JSON into the current panel model."""

    def _current_options(self, data: dict[str, Any]) -> None:
        """Fill in options the current plugin requires; overridden per panel type."""

    def panel_json(self, overrides: dict[str, Any]) -> dict[str, Any]:
        data = _plain(super().panel_json(overrides))  # type: ignore[misc]
        for key in _LEGACY_PANEL_KEYS:
            data.pop(key, None)
        if not data.get("repeat"):
            for key in ("repeat", "repeatDirection", "maxPerRow"):
                data.pop(key, None)
        if not data.get("interval"):
            data.pop("interval", None)
        self._current_options(data)
        data = _without_none(data)
        for step in data["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", []):
            step.setdefault("value", None)  # the base step: Grafana writes -Infinity as null
        return data


@attr.s
class TimeSeries(_CurrentPanelModel, core.TimeSeries):
    """grafanalib's TimeSeries with a legend switch and the threshold style Grafana 11 expects."""

    maxDataPoints = attr.ib(default=None)

    def _current_options(self, data: dict[str, Any]) -> None:
        data["options"]["legend"]["showLegend"] = self.legendDisplayMode != "hidden"
        scale = data["fieldConfig"]["defaults"]["custom"]["scaleDistribution"]
        if scale["type"] == "linear":
            scale.pop("log")
        if not data["fieldConfig"]["defaults"]["mappings"]:
            data["fieldConfig"]["defaults"].pop("mappings")
        if not data["fieldConfig"]["defaults"]["custom"]["stacking"]:
            data["fieldConfig"]["defaults"]["custom"]["stacking"] = {"group": "A", "mode": "none"}


@attr.s
class Stat(_CurrentPanelModel, core.Stat):
    """grafanalib's Stat with the options Grafana 11's stat panel requires."""

    maxDataPoints = attr.ib(default=None)

    def _current_options(self, data: dict[str, Any]) -> None:
        data["options"].update(wideLayout=True, showPercentChange=False, percentChangeColorMode="standard")
        defaults = data["fieldConfig"]["defaults"]
        if not defaults.get("mappings"):
            defaults.pop("mappings", None)
        defaults["color"] = {"mode": "thresholds"}


@attr.s
class Table(_CurrentPanelModel, core.Table):
    """grafanalib's Table without the deprecated display mode and with the options Grafana 11 requires."""

    maxDataPoints = attr.ib(default=None)

    def _current_options(self, data: dict[str, Any]) -> None:
        custom = data["fieldConfig"]["defaults"]["custom"]
        # displayMode is deprecated; its successor cellOptions is left out because, in Grafana's schema,
        # a cellOptions object that only names its type matches several oneOf branches. Absent means "auto".
        if custom.pop("displayMode") != "auto":
            raise ValueError("only the automatic cell display is supported")
        custom["inspect"] = False
        data["options"]["frameIndex"] = 0
        data["options"]["cellHeight"] = "sm"
        data["options"]["footer"] = {"show": False, "reducer": ["sum"], "countRows": False}


@attr.s
class Logs(_CurrentPanelModel, core.Logs):
    """grafanalib's Logs with the log-context toggle option Grafana 11 requires."""

    maxDataPoints = attr.ib(default=None)

    def _current_options(self, data: dict[str, Any]) -> None:
        data["options"]["showLogContextToggle"] = True


@attr.s
class RowPanel(core.RowPanel):
    """A row: only the keys the row model has. Uncollapsed rows carry ``panels: []``."""

    def to_json_data(self) -> dict[str, Any]:
        data = _plain(super().to_json_data())
        return _without_none({k: v for k, v in data.items() if k in _ROW_KEYS})


def _variable_json(template: core.Template, datasource: dict[str, str] | None) -> dict[str, Any]:
    data = _plain(core.Template.to_json_data(template))
    for key in _LEGACY_VARIABLE_KEYS:
        data.pop(key)
    if data["type"] != "interval":
        for key in ("auto", "auto_min", "auto_count"):
            data.pop(key)
    current = data.get("current") or {}
    current.pop("tags", None)
    if current.get("value") == "$__all":
        current["text"] = "All"  # how Grafana itself saves the All option
    if current.get("value") is None:
        data.pop("current", None)
    data["datasource"] = datasource
    return _without_none(data)


@attr.s
class QueryVariable(core.Template):
    """A query variable whose datasource is a reference (uid, usually another variable) not a name."""

    datasourceRef = attr.ib(default=None)

    def to_json_data(self) -> dict[str, Any]:
        data = _variable_json(attr.evolve(self, dataSource=None, type="query"), self.datasourceRef)
        data["definition"] = self.query
        return data


@attr.s
class DatasourceVariable(core.Template):
    """Lets a user with their own Grafana pick the datasource; defaults to the provisioned uid."""

    def to_json_data(self) -> dict[str, Any]:
        data = _variable_json(attr.evolve(self, type="datasource"), None)
        data["current"] = {"text": self.default, "value": self.default}
        data.pop("datasource", None)
        return data


@attr.s
class TextboxVariable(core.Template):
    """A free-text variable (e.g. a trace id pasted from a log line or an exemplar)."""

    def to_json_data(self) -> dict[str, Any]:
        data = _variable_json(attr.evolve(self, type="textbox"), None)
        data["current"] = {"text": self.default or "", "value": self.default or ""}
        data.pop("datasource", None)
        return data


_BUILT_IN_ANNOTATIONS = {
    "builtIn": 1,
    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
    "enable": True,
    "hide": True,
    "iconColor": "rgba(0, 211, 255, 1)",
    "name": "Annotations & Alerts",
    "type": "dashboard",
}


@attr.s
class Dashboard(core.Dashboard):
    """grafanalib's Dashboard without the legacy top-level keys and with Grafana's built-in annotations."""

    def to_json_data(self) -> dict[str, Any]:
        data = _plain(super().to_json_data())
        for key in _LEGACY_DASHBOARD_KEYS:
            data.pop(key, None)
        data["schemaVersion"] = _SCHEMA_VERSION
        data["timepicker"] = {"refresh_intervals": data["timepicker"]["refresh_intervals"]}
        data["annotations"] = {"list": [_BUILT_IN_ANNOTATIONS, *data["annotations"]["list"]]}
        return {k: v for k, v in data.items() if v is not None}  # panels are already in their final form


def dashboard_json(dashboard: core.Dashboard) -> dict[str, Any]:
    """The dashboard as JSON data, panel ids assigned in layout order."""
    return _plain(dashboard.auto_panel_ids())


def datasource_ref(plugin: str, uid: str) -> dict[str, str]:
    """A panel/target datasource reference (``uid`` may be a variable such as ``${datasource}``)."""
    return {"type": plugin, "uid": uid}
