"""Where the tests find the real servers and their tools: ``<NAME>_BIN``, else ``PATH``; never a skip.

``bash scripts/test.sh`` provides pinned versions and exports their paths (``LOKI_BIN``, ``PROMETHEUS_BIN``,
``PROMTOOL_BIN``, ``ALERTMANAGER_BIN``, ``AMTOOL_BIN``); a test run started another way finds them the same way.
A missing binary fails the test that needs it, saying how to provide it.

Example::

    from tests.support.binaries import binary
    subprocess.run([binary("promtool"), "--version"], check=True)
"""

from __future__ import annotations

import os
import shutil

import pytest

__all__ = ["binary"]

#: name → (environment variable, names to look for on PATH)
_BINARIES = {
    "loki": ("LOKI_BIN", ("loki",)),
    "prometheus": ("PROMETHEUS_BIN", ("prometheus",)),
    "promtool": ("PROMTOOL_BIN", ("promtool",)),
    "alertmanager": ("ALERTMANAGER_BIN", ("prometheus-alertmanager", "alertmanager")),
    "amtool": ("AMTOOL_BIN", ("amtool",)),
    "tinyproxy": ("TINYPROXY_BIN", ("tinyproxy",)),
    "openssl": ("OPENSSL_BIN", ("openssl",)),
}


def binary(name: str) -> str:
    """Absolute path of server or tool ``name``; fails the test (never skips) when it cannot be found."""
    variable, candidates = _BINARIES[name]
    configured = os.environ.get(variable)
    if configured:
        if not (os.path.isfile(configured) and os.access(configured, os.X_OK)):
            pytest.fail(f"{variable}={configured} is not an executable file", pytrace=False)
        return configured
    for candidate in candidates:
        found = shutil.which(candidate)
        if found is not None:
            return found
    pytest.fail(f"`{name}` not found: run the tests with `bash scripts/test.sh`, which provides pinned versions, "
                f"or set {variable} to the binary's path", pytrace=False)
