"""Parse LogQL with Grafana's published LogQL grammar, for tests.

Grafana's query editor parses LogQL with the lezer grammar published on npm as ``@grafana/lezer-logql``.
Running every LogQL string the project ships through that grammar catches syntax errors without a Loki
server. The node project lives in ``tests/support/logql/`` (``package.json`` + ``package-lock.json``); its
dependencies are installed with ``npm ci`` on first use.

Example::

    from tests.support.logql_grammar import logql_parse_errors
    assert logql_parse_errors(['{service_name="llm-app"} | json']) == [[]]
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

LOGQL_DIR = Path(__file__).resolve().parent / "logql"
_INSTALL_HINT = (
    "node and npm are required to parse LogQL with Grafana's grammar: install Node.js 20+ "
    "(Debian: `apt-get install nodejs npm`, or https://nodejs.org/) and re-run the tests"
)


class LogQLGrammarUnavailable(RuntimeError):
    """node/npm are missing or the grammar package could not be installed."""


def _ensure_installed() -> str:
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        raise LogQLGrammarUnavailable(_INSTALL_HINT)
    if not (LOGQL_DIR / "node_modules" / "@grafana" / "lezer-logql").is_dir():
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=LOGQL_DIR,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            raise LogQLGrammarUnavailable(
                f"`npm ci` in {LOGQL_DIR} failed (exit {result.returncode}):\n{result.stderr[-2000:]}"
            )
    return node


def logql_parse_errors(queries: list[str]) -> list[list[str]]:
    """Return, for each query, the grammar's syntax errors (an empty list when the query parses).

    Grafana template variables (``$service``, ``${__range}``, ``$__auto`` …) are not LogQL: substitute
    sample values before calling this.
    """
    node = _ensure_installed()
    result = subprocess.run(
        [node, str(LOGQL_DIR / "parse.mjs")],
        input=json.dumps(queries),
        cwd=LOGQL_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        raise LogQLGrammarUnavailable(f"parse.mjs failed (exit {result.returncode}): {result.stderr[-2000:]}")
    errors = json.loads(result.stdout)
    if len(errors) != len(queries):
        raise LogQLGrammarUnavailable(f"parse.mjs returned {len(errors)} results for {len(queries)} queries")
    return errors
