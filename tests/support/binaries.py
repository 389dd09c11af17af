"""Where the tests find the real servers and their tools: ``<NAME>_BIN``, else ``PATH``; never a skip.

``bash scripts/test.sh`` provides the versions pinned in ``scripts/servers.env`` and exports their paths
(``LOKI_BIN``, ``PROMETHEUS_BIN``, ``PROMTOOL_BIN``, ``ALERTMANAGER_BIN``, ``AMTOOL_BIN``, and for the
Prometheus 2.x line ``PROMETHEUS2_BIN``, ``PROMTOOL2_BIN``, ``ALERTMANAGER2_BIN``, ``AMTOOL2_BIN``); a test run
started another way finds them the same way. A binary that is missing, or reports another version than the
pinned one, fails the test that needs it, saying how to provide it. Every binary a test used is recorded, so
the run can report which tests ran on which server version (``tests/support/server_report.py``).

Example::

    from tests.support.binaries import binary
    subprocess.run([binary("promtool"), "--version"], check=True)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

__all__ = ["PINNED", "STACKS", "Stack", "binary", "version"]

SERVERS_ENV = Path(__file__).resolve().parents[2] / "scripts" / "servers.env"


def _read_servers_env(path: Path = SERVERS_ENV) -> dict[str, str]:
    pairs = (line.split("#", 1)[0].strip().partition("=") for line in path.read_text(encoding="utf-8").splitlines())
    return {key: value for key, sep, value in pairs if sep}


#: The pinned versions, as scripts/test.sh provides them.
PINNED = _read_servers_env()


@dataclass(frozen=True)
class _Binary:
    variable: str
    candidates: tuple[str, ...]
    version: str | None  # regular expression the reported x.y.z must match; None: not checked
    wanted: str  # the same, for people


def _exactly(version: str) -> tuple[str, str]:
    return re.escape(version), version


_ANY_2X = (rf"{PINNED['PROMETHEUS2_MAJOR']}\.\d+\.\d+", f"{PINNED['PROMETHEUS2_MAJOR']}.x")
_ANY = (r"\d+\.\d+\.\d+", "any version")

_BINARIES = {
    "loki": _Binary("LOKI_BIN", ("loki",), *_exactly(PINNED["LOKI_VERSION"])),
    "prometheus": _Binary("PROMETHEUS_BIN", ("prometheus",), *_exactly(PINNED["PROMETHEUS_VERSION"])),
    "promtool": _Binary("PROMTOOL_BIN", ("promtool",), *_exactly(PINNED["PROMETHEUS_VERSION"])),
    "alertmanager": _Binary("ALERTMANAGER_BIN", ("prometheus-alertmanager", "alertmanager"),
                            *_exactly(PINNED["ALERTMANAGER_VERSION"])),
    "amtool": _Binary("AMTOOL_BIN", ("amtool",), *_exactly(PINNED["ALERTMANAGER_VERSION"])),
    "prometheus2": _Binary("PROMETHEUS2_BIN", ("prometheus",), *_ANY_2X),
    "promtool2": _Binary("PROMTOOL2_BIN", ("promtool",), *_ANY_2X),
    "alertmanager2": _Binary("ALERTMANAGER2_BIN", ("prometheus-alertmanager", "alertmanager"), *_ANY),
    "amtool2": _Binary("AMTOOL2_BIN", ("amtool",), *_ANY),
    # the Loki proxy and TLS tests: a real HTTP proxy, and openssl for a throwaway CA (any version)
    "tinyproxy": _Binary("TINYPROXY_BIN", ("tinyproxy",), None, "any version"),
    "openssl": _Binary("OPENSSL_BIN", ("openssl",), None, "any version"),
    # the report's browser test: Debian's headless Chromium (any version)
    "chromium": _Binary("CHROMIUM_BIN", ("chromium", "chromium-browser"), None, "any version"),
}


@dataclass(frozen=True)
class Stack:
    """A Prometheus line the stack tests run on: its server, promtool, and the Alertmanager paired with it."""

    name: str
    prometheus: str
    promtool: str
    alertmanager: str
    amtool: str


#: Prometheus 3.5 LTS with the pinned Alertmanager, and the 2.x line a Debian bookworm user has.
STACKS = (
    Stack(f"prometheus-{PINNED['PROMETHEUS_VERSION']}", "prometheus", "promtool", "alertmanager", "amtool"),
    Stack(f"prometheus-{PINNED['PROMETHEUS2_MAJOR']}.x", "prometheus2", "promtool2", "alertmanager2", "amtool2"),
)

#: (test node id or None, binary name, path, version) for every lookup; read by tests/support/server_report.py.
USED: list[tuple[str | None, str, str, str]] = []
current_test: str | None = None


@cache
def _reported_version(path: str) -> str:
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    match = re.search(r"version v?(\d+\.\d+\.\d+)", out.stdout + out.stderr)
    return match.group(1) if match else ""


def _locate(name: str) -> tuple[str, str]:
    spec = _BINARIES[name]
    how = f"run the tests with `bash scripts/test.sh`, which provides pinned versions, or set {spec.variable}"
    configured = os.environ.get(spec.variable)
    if configured:
        if not (os.path.isfile(configured) and os.access(configured, os.X_OK)):
            pytest.fail(f"{spec.variable}={configured} is not an executable file", pytrace=False)
        path, origin = configured, spec.variable
    else:
        found = next((p for p in map(shutil.which, spec.candidates) if p), None)
        if found is None:
            pytest.fail(f"`{name}` not found: {how} to the binary's path", pytrace=False)
        path, origin = found, "PATH"
    if spec.version is None:
        return path, ""
    reported = _reported_version(path)
    if not re.fullmatch(spec.version, reported):
        pytest.fail(f"`{name}` at {path} (from {origin}) reports version {reported or '?'}; the tests need "
                    f"{spec.wanted} (scripts/servers.env): {how} to a binary of that version", pytrace=False)
    return path, reported


def binary(name: str) -> str:
    """Absolute path of server or tool ``name`` at its pinned version; fails the test (never skips) otherwise."""
    path, reported = _locate(name)
    USED.append((current_test, name, path, reported))
    return path


def version(name: str) -> str:
    """The x.y.z that server or tool ``name`` reports (the binary ``binary(name)`` returns)."""
    return _locate(name)[1]
