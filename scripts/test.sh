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

trap 'exit 130' INT  # Ctrl-C stops here, not just the step it interrupted
status=0
.venv/bin/python -m pytest "$@" || status=$?

# The openai version matrix, a step of its own (scripts/openai_matrix.sh): the SDK-facing tests again under
# each supported openai release, with the same pytest arguments.
bash scripts/openai_matrix.sh "$@" || { [ "$status" != 0 ] || status=1; }
exit "$status"
