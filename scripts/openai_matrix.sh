#!/usr/bin/env bash
# The openai version matrix: the SDK-facing tests (calls, streams, records, instrument, faults, runs, and
# tests/providers) once more under each supported openai release, each in its own virtualenv
# .venv-openai/<version> (scripts/lib/sdk_matrix.sh). Run by scripts/test.sh after the main suite, with the
# same pytest arguments. When the arguments name test files or directories (a partial run) it does nothing;
# SKIP_OPENAI_MATRIX=1 (or SKIP_SDK_MATRIX=1) skips it too.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/sdk_matrix.sh
source scripts/lib/sdk_matrix.sh

# The oldest supported release (the first with responses.create), and the newest of each major when last
# checked: 1.x on httpx, 2.x on httpx, 3.x on httpx2. pyproject.toml's openai range spans exactly these.
VERSIONS=(1.66.0 1.109.1 2.54.0 3.57.0)
TESTS=(tests/core/test_calls.py tests/core/test_streams.py tests/core/test_records.py tests/core/test_instrument.py
       tests/core/test_faults.py tests/core/test_context.py tests/providers)

sdk_matrix openai "" "$@"
