#!/usr/bin/env bash
# The openai version matrix: the SDK-facing tests (calls, streams, records, instrument, faults, runs, and
# tests/providers) once more under each supported openai release, each in its own virtualenv
# .venv-openai/<version>, made here and reused while it matches (same openai pin, pyproject.toml and Python).
# Run by scripts/test.sh after the main suite, with the same pytest arguments. When the arguments name test
# files or directories (a partial run) it does nothing; SKIP_OPENAI_MATRIX=1 skips it too.
set -euo pipefail
cd "$(dirname "$0")/.."

# The oldest supported release (the first with responses.create), and the newest of each major when last
# checked: 1.x on httpx, 2.x on httpx, 3.x on httpx2. pyproject.toml's openai range spans exactly these.
VERSIONS=(1.66.0 1.109.1 2.54.0 3.57.0)
TESTS=(tests/core/test_calls.py tests/core/test_streams.py tests/core/test_records.py tests/core/test_instrument.py
       tests/core/test_faults.py tests/core/test_context.py tests/providers)

if [ "${SKIP_OPENAI_MATRIX:-0}" = 1 ]; then
    echo "openai matrix: skipped (SKIP_OPENAI_MATRIX=1)"
    exit 0
fi
for arg in "$@"; do
    if [[ "$arg" != -* ]] && [ -e "${arg%%::*}" ]; then
        echo "openai matrix: skipped (the run names its tests: $arg)"
        exit 0
    fi
done

trap 'exit 130' INT
python=${PYTHON:-python3}
failed=()
for version in "${VERSIONS[@]}"; do
    venv=".venv-openai/$version"
    stamp="$( { echo "openai==$version"; "$python" -VV; cat pyproject.toml; } | sha256sum | cut -c1-16)"
    if [ "$(cat "$venv/.llmmetrics-stamp" 2>/dev/null)" != "$stamp" ]; then
        echo "openai matrix: making $venv"
        rm -rf "$venv"
        "$python" -m venv "$venv"
        "$venv/bin/python" -m pip install -q --disable-pip-version-check -e ".[test]" "openai==$version"
        echo "$stamp" > "$venv/.llmmetrics-stamp"
    fi
    echo "openai matrix: openai $version"
    status=0
    "$venv/bin/python" -m pytest "$@" "${TESTS[@]}" || status=$?
    # 5: the arguments (-k ...) selected none of these tests
    if [ "$status" != 0 ] && [ "$status" != 5 ]; then
        failed+=("$version")
    fi
done

if ((${#failed[@]})); then
    echo "openai matrix: failed under openai ${failed[*]}"
    exit 1
fi
echo "openai matrix: passed under openai ${VERSIONS[*]}"
