"""Real server processes for the stack tests: free loopback ports, start and stop, wait on a condition.

Every server listens on 127.0.0.1 on a port the kernel handed out, keeps its data under the test's tmp_path
and writes its log there (shown when a wait fails).
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def wait_for(what: str, check: Callable[[], T | None], deadline: float, procs: list[subprocess.Popen[bytes]],
             interval: float = 0.5) -> T:
    """Poll ``check`` until it returns a value; fail with ``what`` at the deadline or if a server died."""
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                pytest.fail(f"{proc.args[0]} exited with {proc.returncode} while waiting for {what}")
        try:
            value = check()
            if value is not None:
                return value
        except (OSError, ValueError, KeyError) as exc:
            last_error = exc
        time.sleep(interval)
    pytest.fail(f"timed out waiting for {what} (last error: {last_error!r})")


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
