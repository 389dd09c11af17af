# shellcheck shell=bash
# An SDK version matrix: the SDK-facing tests once more under each supported release of one SDK, each in its
# own virtualenv .venv-<sdk>/<version>, made here and reused while it matches (same pin, pyproject.toml and
# Python). Sourced by scripts/openai_matrix.sh and scripts/anthropic_matrix.sh, which set VERSIONS and TESTS.
# When the pytest arguments name test files or directories (a partial run) it does nothing;
# SKIP_SDK_MATRIX=1 (or SKIP_<SDK>_MATRIX=1) skips it too.

# sdk_matrix NAME PIN_EXTRA PYTEST_ARGS...: PIN_EXTRA is what follows the name in the pin ("" or "[bedrock]").
sdk_matrix() {
    local sdk=$1 extra=$2
    shift 2
    local skip_var
    skip_var="SKIP_$(echo "$sdk" | tr '[:lower:]' '[:upper:]')_MATRIX"
    if [ "${SKIP_SDK_MATRIX:-0}" = 1 ] || [ "${!skip_var:-0}" = 1 ]; then
        echo "$sdk matrix: skipped (SKIP_SDK_MATRIX=1 or $skip_var=1)"
        return 0
    fi
    local arg
    for arg in "$@"; do
        if [[ "$arg" != -* ]] && [ -e "${arg%%::*}" ]; then
            echo "$sdk matrix: skipped (the run names its tests: $arg)"
            return 0
        fi
    done

    trap 'exit 130' INT
    local python=${PYTHON:-python3} failed=() version venv stamp status
    for version in "${VERSIONS[@]}"; do
        venv=".venv-$sdk/$version"
        stamp="$( { echo "$sdk$extra==$version"; "$python" -VV; cat pyproject.toml; } | sha256sum | cut -c1-16)"
        if [ "$(cat "$venv/.llmmetrics-stamp" 2>/dev/null)" != "$stamp" ]; then
            echo "$sdk matrix: making $venv"
            rm -rf "$venv"
            "$python" -m venv "$venv"
            "$venv/bin/python" -m pip install -q --disable-pip-version-check -e ".[test]" "$sdk$extra==$version"
            echo "$stamp" > "$venv/.llmmetrics-stamp"
        fi
        echo "$sdk matrix: $sdk $version"
        status=0
        "$venv/bin/python" -m pytest "$@" "${TESTS[@]}" || status=$?
        # 5: the arguments (-k ...) selected none of these tests
        if [ "$status" != 0 ] && [ "$status" != 5 ]; then
            failed+=("$version")
        fi
    done

    if ((${#failed[@]})); then
        echo "$sdk matrix: failed under $sdk ${failed[*]}"
        return 1
    fi
    echo "$sdk matrix: passed under $sdk ${VERSIONS[*]}"
}
