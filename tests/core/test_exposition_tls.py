"""/metrics over TLS and mutual TLS on loopback: Python clients with and without a certificate, and a real
Prometheus scraping with the tls_config docs/privacy.md shows."""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter

import llmmetrics
from tests.support.binaries import binary
from tests.support.tls import Issued, ThrowawayCA

DOCS = Path(__file__).resolve().parents[2] / "docs" / "privacy.md"
REFUSED = (ssl.SSLError, urllib.error.URLError, ConnectionError, http.client.RemoteDisconnected)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A CA with a server certificate for 127.0.0.1 and a client certificate, and a second, foreign CA."""
    directory = tmp_path_factory.mktemp("pki")
    ca, foreign = ThrowawayCA(directory, "scrapers CA"), ThrowawayCA(directory, "foreign CA")
    return {"ca": ca.cert, "capath": ca.hashed_directory(directory / "cas"), "server": ca.issue("metrics", server=True),
            "client": ca.issue("prometheus"), "foreign_client": foreign.issue("prometheus")}


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("llmmetrics_tls_probe", "A series to find in the scrape.", registry=registry).inc(3)
    return registry


@pytest.fixture
def serve() -> Iterator[Any]:
    """start_http_server on 127.0.0.1 and a free port; shut down after the test."""
    servers: list[Any] = []

    def start(**tls: Any) -> int:
        server, _ = llmmetrics.start_http_server(0, addr="127.0.0.1", registry=_registry(), **tls)
        servers.append(server)
        return int(server.server_address[1])

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _scrape(port: int, ca: Path, client: Issued | None = None, scheme: str = "https") -> str:
    context = ssl.create_default_context(cafile=str(ca))
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    with urllib.request.urlopen(f"{scheme}://127.0.0.1:{port}/metrics", context=context, timeout=5) as response:
        return response.read().decode()


def _tls(pki: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"certfile": str(pki["server"].cert), "keyfile": str(pki["server"].key), **more}


def test_tls_serves_metrics_to_a_client_that_verifies_the_server(pki: dict[str, Any], serve: Any) -> None:
    """With certfile/keyfile the scrape is HTTPS, verified against the CA; plain HTTP gets no metrics."""
    port = serve(**_tls(pki))
    assert "llmmetrics_tls_probe_total 3.0" in _scrape(port, pki["ca"])
    with pytest.raises(REFUSED):
        _scrape(port, pki["ca"], scheme="http")


@pytest.mark.parametrize("option", ["client_cafile", "client_capath"])
def test_mutual_tls_accepts_only_clients_with_a_certificate_from_the_ca(pki: dict[str, Any], serve: Any,
                                                                         option: str) -> None:
    """With client_auth_required and the CA as a file or a hashed directory (c_rehash's layout), the CA's
    client certificate scrapes; no certificate, or a foreign CA's, is refused, and the server keeps serving."""
    ca = pki["ca"] if option == "client_cafile" else pki["capath"]
    port = serve(**_tls(pki, **{option: str(ca)}, client_auth_required=True))
    assert "llmmetrics_tls_probe_total 3.0" in _scrape(port, pki["ca"], pki["client"])
    with pytest.raises(REFUSED):
        _scrape(port, pki["ca"])
    with pytest.raises(REFUSED):
        _scrape(port, pki["ca"], pki["foreign_client"])
    assert "llmmetrics_tls_probe_total" in _scrape(port, pki["ca"], pki["client"])


@pytest.mark.parametrize("options,message", [
    ({"certfile": "server.pem"}, "certfile and keyfile go together"),
    ({"keyfile": "server.key"}, "certfile and keyfile go together"),
    ({"client_cafile": "ca.pem", "client_auth_required": True}, "need TLS"),
    ({"certfile": "s.pem", "keyfile": "s.key", "client_cafile": "ca.pem"}, "only used with client_auth_required"),
    ({"certfile": "s.pem", "keyfile": "s.key", "client_auth_required": True}, "public CAs would be accepted"),
])
def test_combinations_that_would_weaken_tls_silently_are_refused(options: dict[str, Any], message: str) -> None:
    """Half a TLS setup raises instead of serving plain HTTP or accepting any client."""
    with pytest.raises(ValueError, match=message):
        llmmetrics.start_http_server(0, addr="127.0.0.1", registry=_registry(), **options)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _documented_job(pki: dict[str, Any], port: int) -> dict[str, Any]:
    """The scrape job docs/privacy.md shows, with this test's certificates and target put in."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
    job = next(yaml.safe_load(b)["scrape_configs"][0] for b in blocks if "tls_config" in b)
    assert job["scheme"] == "https" and set(job["tls_config"]) == {"ca_file", "cert_file", "key_file"}
    job["tls_config"] = {"ca_file": str(pki["ca"]), "cert_file": str(pki["client"].cert),
                         "key_file": str(pki["client"].key)}
    job["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
    return job


def test_a_real_prometheus_scrapes_over_mutual_tls(pki: dict[str, Any], serve: Any, tmp_path: Path) -> None:
    """Prometheus with the documented job (tls_config ca_file, cert_file, key_file) scrapes the series; the same
    job without the client certificate is down with the TLS error "certificate required"."""
    port = serve(**_tls(pki, client_cafile=str(pki["ca"]), client_auth_required=True))
    documented = _documented_job(pki, port)
    without_certificate = {**documented, "job_name": "no-client-cert", "tls_config": {"ca_file": str(pki["ca"])}}
    config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
              "scrape_configs": [documented, without_certificate]}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    web = _free_port()
    with (tmp_path / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen([binary("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{web}"],
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        jobs = {documented["job_name"], "no-client-cert"}
        health = _wait_for_targets(web, proc, jobs, tmp_path / "prometheus.log")
        assert health[documented["job_name"]]["health"] == "up", health[documented["job_name"]]
        refused = health["no-client-cert"]
        assert refused["health"] == "down" and "certificate required" in refused["lastError"], refused
        assert _query(web, f'llmmetrics_tls_probe_total{{job="{documented["job_name"]}"}}') == ["3"]
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _get(web: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{web}{path}", timeout=5) as response:
        return json.loads(response.read())


def _query(web: int, expr: str) -> list[str]:
    data = _get(web, "/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    return [sample["value"][1] for sample in data["data"]["result"]]


def _wait_for_targets(web: int, proc: subprocess.Popen[bytes], jobs: set[str], log: Path) -> dict[str, Any]:
    """Each job's active target once every one has been scraped at least once (bounded: 60 s)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"prometheus exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            targets = _get(web, "/api/v1/targets")["data"]["activeTargets"]
        except (OSError, ValueError):
            targets = []
        seen = {t["labels"]["job"]: t for t in targets if t["health"] != "unknown"}
        if set(seen) >= jobs:
            return seen
        time.sleep(0.2)
    pytest.fail(f"prometheus did not scrape {sorted(jobs)} within 60 s:\n{log.read_text()[-3000:]}")
