"""The generated datasource provisioning's Tempo option: off by default (exemplars link to Loki only); with
``tempo_uid`` a second exemplar destination opens the trace id in that Tempo datasource, which ``tempo_url``
also provisions; bad values are refused before anything is written."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from llmmetrics.stack import generate, provisioning
from llmmetrics.stack.options import StackOptions
from tests.stack.shared import REPO


def _datasources(options: StackOptions) -> dict[str, dict[str, Any]]:
    return {d["type"]: d for d in yaml.safe_load(generate.render(options)[provisioning.FILE])["datasources"]}


def test_by_default_exemplars_link_to_loki_only_and_no_tempo_is_provisioned() -> None:
    """The committed file (default options): one exemplar destination, the Loki records; no Tempo datasource."""
    committed = {d["type"]: d for d in yaml.safe_load((REPO / provisioning.FILE).read_text())["datasources"]}
    assert committed == _datasources(StackOptions())
    destinations = committed["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert [d["urlDisplayLabel"] for d in destinations] == ["Trace records in Loki"] and "tempo" not in committed


def test_tempo_uid_adds_a_second_exemplar_destination_to_that_datasource() -> None:
    """With tempo_uid, the exemplar's trace_id also opens in Tempo (a datasourceUid destination), Loki's link kept;
    the datasource itself is left to the Grafana that has it."""
    sources = _datasources(StackOptions(tempo_uid="my-tempo"))
    loki, tempo = sources["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert loki == _datasources(StackOptions())["prometheus"]["jsonData"]["exemplarTraceIdDestinations"][0]
    assert tempo == {"name": "trace_id", "datasourceUid": "my-tempo", "urlDisplayLabel": "Trace in Tempo"}
    assert "tempo" not in sources


def test_tempo_url_provisions_the_tempo_datasource_with_that_uid() -> None:
    """With tempo_url too, a Tempo datasource of that uid and URL is provisioned next to Prometheus and Loki."""
    sources = _datasources(StackOptions(tempo_uid="tempo", tempo_url="http://tempo:3200"))
    assert sources["tempo"] == {"name": "Tempo", "type": "tempo", "uid": "tempo", "access": "proxy",
                                "url": "http://tempo:3200", "editable": False}
    assert sources["prometheus"]["jsonData"]["exemplarTraceIdDestinations"][1]["datasourceUid"] == "tempo"


def test_the_generate_command_takes_the_tempo_options(tmp_path: Any) -> None:
    """`llmmetrics generate --tempo-uid/--tempo-url` writes them; a tempo_url without a uid is refused (exit 2)."""
    assert generate.main(["generate", "--out", str(tmp_path), "--tempo-uid", "tempo", "--tempo-url", "http://tempo:3200"]) == 0
    written = yaml.safe_load((tmp_path / provisioning.FILE).read_text())["datasources"]
    assert [d["type"] for d in written] == ["prometheus", "loki", "tempo"]
    assert generate.main(["generate", "--out", str(tmp_path / "x"), "--tempo-url", "http://tempo:3200"]) == 2
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("options,message", [
    ({"tempo_uid": ""}, "tempo_uid"), ({"tempo_uid": 'a"b'}, "tempo_uid"), ({"tempo_uid": "x" * 41}, "tempo_uid"),
    ({"tempo_url": "http://tempo:3200"}, "needs tempo_uid"),
    ({"tempo_uid": "tempo", "tempo_url": "tempo:3200"}, "http"),
    ({"tempo_uid": "tempo", "tempo_url": "http://tempo:3200/$x"}, "http"),
])
def test_bad_tempo_options_are_refused_naming_the_field(options: dict[str, str], message: str) -> None:
    """A uid Grafana would not accept, or a URL that is not http(s) (or holds a `$` Grafana would expand)."""
    with pytest.raises(ValueError, match=message):
        StackOptions(**options)
