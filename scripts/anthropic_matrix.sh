#!/usr/bin/env bash
# The anthropic version matrix: the Claude tests (tests/providers/test_anthropic_*.py) and the trace-context
# tests once more under each supported anthropic release, each in its own virtualenv .venv-anthropic/<version>
# (scripts/lib/sdk_matrix.sh). Run by scripts/test.sh after the openai matrix, with the same pytest arguments.
# When the arguments name test files or directories (a partial run) it does nothing; SKIP_ANTHROPIC_MATRIX=1
# (or SKIP_SDK_MATRIX=1) skips it too.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/sdk_matrix.sh
source scripts/lib/sdk_matrix.sh

# The oldest supported release and the newest 2.x when last checked (both on httpx2). pyproject.toml's
# anthropic range spans exactly these.
VERSIONS=(2.0.0 2.15.0)
TESTS=(tests/providers/test_anthropic_calls.py tests/providers/test_anthropic_streams.py
       tests/providers/test_anthropic_faults.py tests/providers/test_anthropic_compat.py
       tests/providers/test_registry.py tests/core/test_tracecontext.py)

sdk_matrix anthropic "[bedrock]" "$@"
