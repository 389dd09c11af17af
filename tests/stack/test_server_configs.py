"""The hand-written server configs: compose, Prometheus, Alertmanager, Loki and Grafana provisioning.

Compose is validated against the Compose specification's JSON schema and must pin the server versions the
tests run; each server's config is accepted by that server's own checker (promtool, amtool, `loki
-verify-config`), and the settings the stack relies on are checked too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest
import yaml

import llmmetrics
from llmmetrics.config import Config
from llmmetrics.sinks.loki_push import MAX_LABEL_NAMES, MAX_LINE_BYTES
from llmmetrics.stack import dashboards, provisioning
from tests.support.logql_grammar import logql_parse_errors
from tests.stack.shared import REPO, load_schema
from tests.stack.stack_files import substitute
from tests.stack.tools import binary, run
from tests.support.binaries import PINNED, Stack, version
from tests.support.loki_server import LokiServer

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]


def _yaml(relative: str) -> Any:
    return yaml.safe_load((REPO / relative).read_text())


# --- docker compose -------------------------------------------------------------------------------------

def test_compose_matches_compose_spec() -> None:
    """docker-compose.yml validates against the Compose specification's JSON schema."""
    validator = jsonschema.Draft7Validator(load_schema("compose-spec.json"))
    assert [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(COMPOSE)] == []


def test_compose_schema_check_has_teeth() -> None:
    """An unknown service key is rejected by the same validation (the schema is strict)."""
    broken = json.loads(json.dumps(COMPOSE))
    broken["services"]["app"]["helthcheck"] = {}
    assert list(jsonschema.Draft7Validator(load_schema("compose-spec.json")).iter_errors(broken))


def _bind_mounts() -> list[tuple[str, str, str]]:
    mounts = []
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith((".", "/")):
                mounts.append((name, source, target))
    return mounts


def test_every_bind_mounted_file_exists() -> None:
    """Every ./path mounted into a container exists in the repository."""
    mounts = _bind_mounts()
    assert len(mounts) == 6
    assert [m for m in mounts if not (REPO / m[1]).exists()] == []


def test_config_mounts_are_read_only_and_data_in_named_volumes() -> None:
    """Bind-mounted configs are :ro; every other volume is a declared named volume."""
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            parts = volume.split(":")
            if parts[0].startswith((".", "/")):
                assert parts[-1] == "ro", f"{name}: {volume}"
            else:
                assert parts[0] in COMPOSE["volumes"], f"{name}: {volume}"


def test_every_image_tag_is_pinned() -> None:
    """Images name an explicit version tag, never `latest` or no tag; the Dockerfile base is pinned too."""
    for name, service in SERVICES.items():
        image = service["image"]
        tag = image.rsplit(":", 1)[1] if ":" in image.split("/")[-1] else ""
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: {image}"
    base = re.search(r"^FROM (\S+)", (REPO / "Dockerfile").read_text(), re.MULTILINE).group(1)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base)


def _image_tag(service: str) -> str:
    return SERVICES[service]["image"].rsplit(":", 1)[1].removeprefix("v")


@pytest.mark.parametrize(("service", "server"), [("prometheus", "prometheus"), ("alertmanager", "alertmanager"),
                                                 ("loki", "loki")])
def test_compose_pins_the_server_versions_the_tests_ran(service: str, server: str) -> None:
    """Each server image in docker-compose.yml has exactly the version of the binary the tests run."""
    assert _image_tag(service) == version(server) == PINNED[f"{server.upper()}_VERSION"]


def test_compose_tags_the_demo_image_with_the_package_version() -> None:
    """The app image compose builds is tagged with the version it contains (``llmmetrics.__version__``)."""
    assert _image_tag("app") == llmmetrics.__version__


def test_compose_pins_a_current_grafana() -> None:
    """Grafana is the pinned 12.x/13.x release (it imports the classic dashboard JSON the tests validate)."""
    assert _image_tag("grafana") == PINNED["GRAFANA_VERSION"] and int(PINNED["GRAFANA_VERSION"].split(".")[0]) >= 12


def test_testing_doc_states_the_pinned_versions() -> None:
    """docs/testing.md's version table names the pinned Prometheus, Alertmanager and Loki and their images."""
    text = (REPO / "docs" / "testing.md").read_text()
    table = text[text.index("## Server versions"):text.index("## How the binaries are found")]
    for key in ("PROMETHEUS_VERSION", "ALERTMANAGER_VERSION", "LOKI_VERSION"):
        assert PINNED[key] in table, key
    for service in ("prometheus", "alertmanager", "loki"):
        assert SERVICES[service]["image"] in table, service
    assert PINNED["GRAFANA_VERSION"] in table


def test_readme_states_the_versions_the_tests_ran() -> None:
    """README.md's version table names the pinned Loki, Prometheus and Alertmanager, the 2.x line, every openai
    and anthropic release of the SDK matrices, and the Grafana that compose pins."""
    text = (REPO / "README.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    assert PINNED["LOKI_VERSION"] in rows["Loki"]
    assert PINNED["PROMETHEUS_VERSION"] in rows["Prometheus, promtool"]
    assert f"{PINNED['PROMETHEUS2_MAJOR']}.x" in rows["Prometheus, promtool"]
    assert PINNED["ALERTMANAGER_VERSION"] in rows["Alertmanager, amtool"]
    for sdk in ("openai", "anthropic"):
        matrix = re.search(r"^VERSIONS=\((.*)\)$", (REPO / "scripts" / f"{sdk}_matrix.sh").read_text(), re.M)
        assert matrix is not None, sdk
        assert re.findall(r"\d+\.\d+\.\d+", rows[f"`{sdk}` client"]) == matrix.group(1).split(), sdk
    assert PINNED["GRAFANA_VERSION"] in rows["Grafana"]


def test_ports_are_published_on_loopback_only() -> None:
    """Every published port is bound to 127.0.0.1."""
    ports = [(n, p) for n, s in SERVICES.items() for p in s.get("ports", [])]
    assert len(ports) == 5 and all(p.startswith("127.0.0.1:") for _, p in ports)


def test_services_have_healthchecks_and_wait_for_healthy_dependencies() -> None:
    """Each service has a health check; every depends_on waits for service_healthy."""
    for name, service in SERVICES.items():
        assert service["healthcheck"]["test"][0] == "CMD", name
        for dependency, condition in service.get("depends_on", {}).items():
            assert condition == {"condition": "service_healthy"}, f"{name} -> {dependency}"
            assert "healthcheck" in SERVICES[dependency]


def test_grafana_requires_an_admin_password_and_disables_anonymous_access() -> None:
    """The admin password comes from the environment with no default; anonymous access and sign-up are off."""
    env = SERVICES["grafana"]["environment"]
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", env["GF_SECURITY_ADMIN_PASSWORD"])
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false" and env["GF_USERS_ALLOW_SIGN_UP"] == "false"


def test_prometheus_keeps_exemplars_for_30_days() -> None:
    """Prometheus runs with exemplar storage and 30-day retention."""
    command = SERVICES["prometheus"]["command"]
    assert "--enable-feature=exemplar-storage" in command
    assert "--storage.tsdb.retention.time=30d" in command


def test_app_runs_the_demo_against_loki() -> None:
    """The app service is built from the Dockerfile, with the extras that make the demo call both SDKs and write
    its report, and runs `llmmetrics demo` pushing to the Loki service."""
    app = SERVICES["app"]
    assert app["build"]["dockerfile"] == "Dockerfile"
    assert re.search(r"^RUN pip install '\.\[anthropic,report\]'", (REPO / "Dockerfile").read_text(), re.M)
    assert app["command"] == ["llmmetrics", "demo", "--host", "0.0.0.0", "--port", "8000",
                              "--loki-url", "http://loki:3100"]
    scrape = _yaml("prometheus/prometheus.yml")["scrape_configs"][0]
    assert scrape["job_name"] == app["environment"]["LLMMETRICS_SERVICE"]
    assert scrape["static_configs"][0]["targets"] == ["app:8000"]


def test_grafana_mounts_match_the_provisioning() -> None:
    """The dashboard provider reads the directory compose mounts grafana/dashboards into."""
    provider = _yaml("grafana/provisioning/dashboards/llmmetrics.yml")["providers"][0]
    mounts = {target: source for _, source, target in _bind_mounts()}
    assert mounts[provider["options"]["path"]] == "./grafana/dashboards"
    assert mounts["/etc/grafana/provisioning"] == "./grafana/provisioning"


# --- Prometheus and Alertmanager ------------------------------------------------------------------------

def test_promtool_check_config(stack: Stack) -> None:
    """promtool of each Prometheus line accepts prometheus.yml, including the rule files it loads."""
    result = run([binary(stack.promtool), "check", "config", str(REPO / "prometheus" / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 rule files found" in result.stdout + result.stderr


def test_amtool_check_config(stack: Stack) -> None:
    """amtool of each tested Alertmanager accepts alertmanager.yml."""
    result = run([binary(stack.amtool), "check-config", str(REPO / "alertmanager" / "alertmanager.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("labels", "receiver"), [
    (["alertname=LLMHighErrorRate", "severity=page", "service=llm-app"], "page"),
    (["alertname=LLMRateLimited", "severity=ticket", "service=llm-app", "model=gpt-4o"], "ticket"),
    (["alertname=Watchdog"], "default"),
])
def test_alertmanager_routes_by_severity(labels: list[str], receiver: str, stack: Stack) -> None:
    """amtool's route test sends pages to `page`, tickets to `ticket`, anything else to `default`."""
    config = str(REPO / "alertmanager" / "alertmanager.yml")
    result = run([binary(stack.amtool), "config", "routes", "test", f"--config.file={config}", *labels])
    assert result.stdout.strip() == receiver, result.stdout + result.stderr


def test_alertmanager_groups_and_inhibits_as_documented() -> None:
    """Grouping by alertname/service/model; a page inhibits the ticket of the same alert and service."""
    config = _yaml("alertmanager/alertmanager.yml")
    assert config["route"]["group_by"] == ["alertname", "service", "model"]
    assert config["inhibit_rules"] == [{"source_matchers": ['severity="page"'],
                                        "target_matchers": ['severity="ticket"'],
                                        "equal": ["alertname", "service"]}]
    text = (REPO / "alertmanager" / "alertmanager.yml").read_text()
    assert "_file:" in text and not re.search(r"^\s*(api_url|auth_password|smtp_auth_password):", text, re.M)


# --- Loki -----------------------------------------------------------------------------------------------

def test_loki_accepts_its_config() -> None:
    """The real Loki's own checker (`-verify-config`) accepts loki/loki-config.yml."""
    result = run([binary("loki"), f"-config.file={REPO / 'loki' / 'loki-config.yml'}", "-verify-config"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_loki_checker_has_teeth(tmp_path: Path) -> None:
    """The same check rejects a config with a misspelt setting."""
    broken = tmp_path / "loki.yml"
    broken.write_text((REPO / "loki" / "loki-config.yml").read_text().replace("max_line_size:", "max_lin_size:"))
    assert run([binary("loki"), f"-config.file={broken}", "-verify-config"]).returncode != 0


def test_compose_loki_health_check_runs_on_the_real_loki(tmp_path: Path) -> None:
    """The compose health check (`loki -health`) fails while Loki is down and passes once it is ready, on the
    port the committed config listens on."""
    check = SERVICES["loki"]["healthcheck"]["test"]
    assert check[:2] == ["CMD", "/usr/bin/loki"] and "-health" in check
    assert _yaml("loki/loki-config.yml")["server"]["http_listen_port"] == 3100  # the check's default URL
    loki = LokiServer(tmp_path, auth_enabled=False)
    command = [binary("loki"), *check[2:], f"-health.url={loki.url}/ready"]
    assert run(command).returncode == 1
    with loki:
        result = run(command)
        assert result.returncode == 0, result.stdout + result.stderr


def _size(text: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(KB|MB)?", str(text)).groups()
    return int(number) * {"KB": 1024, "MB": 1024 * 1024, None: 1}[unit]


def test_loki_config_stores_full_trace_records_for_30_days() -> None:
    """tsdb + schema v13, structured metadata on, 30-day compactor retention, lines fit a full record."""
    loki = _yaml("loki/loki-config.yml")
    schema = loki["schema_config"]["configs"][-1]
    assert (schema["store"], schema["schema"]) == ("tsdb", "v13")
    limits = loki["limits_config"]
    assert limits["allow_structured_metadata"] is True
    assert loki["compactor"]["retention_enabled"] is True and limits["retention_period"] == "720h"
    assert _size(limits["max_line_size"]) >= max(256 * 1024, Config().max_record_bytes, MAX_LINE_BYTES)
    assert limits["max_label_names_per_series"] >= MAX_LABEL_NAMES
    assert limits["max_line_size_truncate"] is False
    # the sink's replay cut-off must be younger than what Loki still accepts
    assert Config().loki_replay_max_age_seconds < int(limits["reject_old_samples_max_age"].rstrip("h")) * 3600


# --- Grafana provisioning ------------------------------------------------------------------------------

def _datasources() -> dict[str, dict[str, Any]]:
    return {d["type"]: d for d in _yaml(provisioning.FILE)["datasources"]}


def test_datasource_uids_match_the_dashboards() -> None:
    """The provisioned uids are the defaults of the dashboards' datasource variables."""
    for filename, plugin in (("llm-overview.json", "prometheus"), ("llm-traces.json", "loki")):
        dashboard = json.loads((REPO / "grafana" / "dashboards" / filename).read_text())
        variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "datasource")
        assert variable["current"]["value"] == _datasources()[plugin]["uid"]


def test_exemplar_link_opens_the_trace_in_loki_explore() -> None:
    """The exemplar URL is an Explore link on the Loki uid whose LogQL (trace id filled in) parses."""
    destination = _datasources()["prometheus"]["jsonData"]["exemplarTraceIdDestinations"][0]
    assert destination["name"] == "trace_id" and "datasourceUid" not in destination
    url = destination["url"].replace("$$", "$")  # provisioning escape
    parts = urlsplit(url)
    assert parts.path == "/explore"
    pane = json.loads(parse_qs(parts.query)["panes"][0])["trace"]
    query = pane["queries"][0]
    assert pane["datasource"] == query["datasource"]["uid"] == _datasources()["loki"]["uid"]
    expr = query["expr"].replace("${__value.raw}", "4bf92f3577b34da6a3ce929d0e0e4736")
    assert "4bf92f3577b34da6a3ce929d0e0e4736" in expr
    assert logql_parse_errors([expr]) == [[]]


def test_loki_derived_field_links_trace_id_to_the_traces_dashboard() -> None:
    """A record's trace_id is matched in the JSON line and linked to the traces dashboard's variable."""
    field = _datasources()["loki"]["jsonData"]["derivedFields"][0]
    line = '{"kind": "call", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"}'
    assert re.search(field["matcherRegex"], line).group(1) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert re.search(field["matcherRegex"], line.replace(": ", ":")).group(1) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert field["url"].startswith(f"/d/{dashboards.TRACES_UID}/") and "var-trace_id=$${__value.raw}" in field["url"]


def test_trace_queries_on_the_dashboard_select_one_trace() -> None:
    """The dashboard's trace pipeline keeps a record only when its trace_id equals the variable."""
    query = substitute('{service_name="llm-app"} ' + dashboards.trace_filter())
    assert query.endswith('| trace="4bf92f3577b34da6a3ce929d0e0e4736"')
    assert logql_parse_errors([query]) == [[]]


def test_provisioning_files_are_the_only_grafana_yaml() -> None:
    """Grafana provisioning holds exactly the datasource and dashboard-provider files."""
    found = sorted(str(p.relative_to(REPO)) for p in (REPO / "grafana" / "provisioning").rglob("*.yml"))
    assert found == ["grafana/provisioning/dashboards/llmmetrics.yml", provisioning.FILE]


def test_dockerignore_keeps_the_image_small() -> None:
    """The build context is limited to what `pip install .` needs."""
    lines = (REPO / ".dockerignore").read_text().split("\n")
    assert "*" in lines and {"!pyproject.toml", "!README.md", "!llmmetrics/"} <= set(lines)
