#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian/Ubuntu machine, then run it.
# Installs (only where missing): the Debian packages prometheus (prometheus, promtool) and
# prometheus-alertmanager (alertmanager, amtool), Node.js/npm for Grafana's LogQL grammar, a virtualenv
# in .venv with the project and its test extras. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v amtool >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
{ command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; } || missing+=(nodejs npm)
# the Loki proxy and TLS tests: a real HTTP proxy, and openssl for a throwaway CA
command -v tinyproxy >/dev/null 2>&1 || missing+=(tinyproxy-bin); command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    echo "installing Debian packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
(cd tests/support/logql && npm ci --silent --no-audit --no-fund >/dev/null)

exec .venv/bin/python -m pytest "$@"
