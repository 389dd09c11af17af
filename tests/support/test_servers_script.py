"""scripts/lib/servers.sh, the step of scripts/test.sh that provides the pinned servers (no network used here)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.support.binaries import PINNED, binary

REPO = Path(__file__).resolve().parents[2]


def _provide(env: dict[str, str], cache: Path) -> subprocess.CompletedProcess[str]:
    script = "source scripts/servers.env && source scripts/lib/servers.sh && provide_servers && report_servers"
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_BIN")}
    return subprocess.run(["bash", "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**clean, "XDG_CACHE_HOME": str(cache), "SERVERS_OFFLINE": "1", **env})


def _pinned_binaries() -> dict[str, str]:
    return {"PROMETHEUS_BIN": binary("prometheus"), "PROMTOOL_BIN": binary("promtool"),
            "ALERTMANAGER_BIN": binary("alertmanager"), "AMTOOL_BIN": binary("amtool")}


def test_explicit_binaries_are_used_and_reported_with_their_versions(tmp_path: Path) -> None:
    """With every <NAME>_BIN set to the pinned version, the step succeeds and prints each path and version."""
    result = _provide({**_pinned_binaries(), "LOKI_BIN": binary("loki")}, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for variable, path in {**_pinned_binaries(), "LOKI_BIN": binary("loki")}.items():
        line = next(line for line in result.stdout.splitlines() if line.split()[:1] == [variable])
        assert path in line and f"from {variable}" in line
    assert f"LOKI_BIN           {PINNED['LOKI_VERSION']}" in result.stdout


def test_a_cached_binary_is_found_without_a_download(tmp_path: Path) -> None:
    """A pinned binary placed at servers/<name>-<version>/ in the cache is used as it is."""
    cached = tmp_path / "llmmetrics" / "servers" / f"loki-{PINNED['LOKI_VERSION']}" / "loki"
    cached.parent.mkdir(parents=True)
    cached.symlink_to(binary("loki"))
    result = _provide(_pinned_binaries(), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{cached}  (cache: placed by hand)" in result.stdout


def test_a_missing_server_fails_the_run_naming_it_and_how_to_provide_it(tmp_path: Path) -> None:
    """Loki absent (no LOKI_BIN, empty cache, downloads off): the step fails and says
    where to put it or which variable to set."""
    result = _provide(_pinned_binaries(), tmp_path)
    assert result.returncode == 1
    assert f"loki {PINNED['LOKI_VERSION']}: not in the cache" in result.stderr
    assert "LOKI_BIN=/path/to/loki" in result.stderr and str(tmp_path / "llmmetrics" / "servers") in result.stderr


def test_a_binary_of_another_version_is_refused(tmp_path: Path) -> None:
    """PROMETHEUS_BIN pointing at a Prometheus that is not the pinned version fails the run, naming both."""
    result = _provide({**_pinned_binaries(), "LOKI_BIN": binary("loki"), "PROMETHEUS_BIN": binary("prometheus2")},
                      tmp_path)
    assert result.returncode == 1
    assert f"is not an executable reporting version {PINNED['PROMETHEUS_VERSION']}" in result.stderr
