"""Real server processes for the stack tests: free loopback ports, start and stop, wait on a condition.

Every server listens on 127.0.0.1 on a port the kernel handed out, keeps its data under the test's tmp_path
and writes its log there (shown when a wait fails).
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.processes import free_port, wait_for

__all__ = ["free_port", "start", "stop", "wait_for", "get_json", "query"]


def start(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=log.parent)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def query(prom: str, expr: str, **params: str) -> list[dict[str, Any]]:
    """An instant query's result vector; raises ValueError when Prometheus rejects the query."""
    try:
        body = get_json(f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr, **params}))
    except urllib.error.HTTPError as exc:
        raise ValueError(f"{expr!r}: {exc.read().decode(errors='replace')}") from exc
    if body["status"] != "success":
        raise ValueError(f"query failed: {body}")
    return body["data"]["result"]
