#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian/Ubuntu machine, then run it. Extra arguments go
# to pytest. The steps, in order (each a function below):
#   system_packages    Node.js/npm (Grafana's LogQL grammar), the distribution's prometheus and
#                      prometheus-alertmanager (the Prometheus 2.x runs), tinyproxy and openssl (the Loki proxy and
#                      TLS tests), chromium (the report's browser test), valgrind (the instruction-count
#                      benchmark's smoke test), with apt where missing (sudo when not root)
#   servers            the pinned Loki, Prometheus 3.5 LTS + promtool, Alertmanager + amtool
#                      (scripts/servers.env, scripts/lib/servers.sh), and the Prometheus 2.x line; prints which
#                      binary each test server is and where it came from, and stops naming anything missing
#   python_env         .venv with the project and its test extras
#   logql_grammar      tests/support/logql's npm packages
#   run_tests          pytest
#   openai_matrix      the SDK-facing tests under each supported openai major (scripts/openai_matrix.sh)
#   anthropic_matrix   the Claude tests under the oldest and newest anthropic 2.x (scripts/anthropic_matrix.sh)
# docs/testing.md explains how the binaries are found and how to provide them offline.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/servers.env
source scripts/servers.env
# shellcheck source=scripts/lib/servers.sh
source scripts/lib/servers.sh

system_packages() {
    local missing=()
    command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
    command -v amtool >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
    { command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; } || missing+=(nodejs npm)
    # the Loki proxy and TLS tests: a real HTTP proxy, and openssl for a throwaway CA
    command -v tinyproxy >/dev/null 2>&1 || missing+=(tinyproxy-bin)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)  # the report's browser test (tests/report/)
    command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)  # benchmarks/instructions.py's smoke test
    ((${#missing[@]})) || return 0
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    echo "installing packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

servers() {
    provide_servers
    provide_prometheus2
    report_servers
}

python_env() {
    python3 -m venv .venv
    .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
}

logql_grammar() {
    (cd tests/support/logql && npm ci --silent --no-audit --no-fund >/dev/null)
}

run_tests() {
    .venv/bin/python -m pytest "$@"
}

# The SDK-facing tests again under each supported openai release (scripts/openai_matrix.sh), with the same
# pytest arguments; skipped when the arguments name test files or directories (a partial run).
openai_matrix() {
    bash scripts/openai_matrix.sh "$@"
}

anthropic_matrix() {
    bash scripts/anthropic_matrix.sh "$@"
}

system_packages
servers
python_env
logql_grammar
trap 'exit 130' INT  # Ctrl-C stops the run, not just the step it interrupted
status=0
run_tests "$@" || status=$?
openai_matrix "$@" || { [ "$status" != 0 ] || status=1; }
anthropic_matrix "$@" || { [ "$status" != 0 ] || status=1; }
exit "$status"
