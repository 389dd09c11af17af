"""A real Grafana Loki for the tests: ``binary("loki")`` run with the shipped ``loki/loki-config.yml``.

The shipped configuration is loaded and only what a test machine needs is changed: 127.0.0.1 and free
ports, storage in a temporary directory, ``auth_enabled: true`` so that each test writes to its own tenant
of one shared Loki (tenants are fully isolated: streams, limits, and the per-tenant series of Loki's
``loki_discarded_samples_total``), a runtime overrides file so a test can give its tenant tight limits
(``set_limits``), and the query scheduler named by its address instead of found through its ring, so that
Loki answers queries a quarter of a second after it starts instead of about fifteen (the query frontend
looks for schedulers every 10 s, and a scheduler accepts work only once its ring check, every few seconds,
has seen it). The limits, the schema and ``discover_service_name``/``discover_log_levels`` stay as shipped.

>>> with LokiServer(tmp_path) as loki:                                                    # doctest: +SKIP
...     loki.entries("t1", '{service_name="checkout"}')
"""

from __future__ import annotations

import copy
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.binaries import binary

__all__ = ["LokiServer", "TLSFiles", "free_port", "wait_until"]

REPO = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = REPO / "loki" / "loki-config.yml"
READY_TIMEOUT_SECONDS = 30.0
#: The ingester otherwise reports ready only after 15 s.
FAST_START_FLAGS = ("-ingester.min-ready-duration=0s",)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Re-check ``condition`` until it returns something truthy (returned) or ``timeout`` passes (None)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value or None
        time.sleep(interval)


class TLSFiles:
    """Paths of a server certificate, its key and the CA that signed it (PEM)."""

    def __init__(self, cert: Path, key: Path, ca: Path) -> None:
        self.cert, self.key, self.ca = cert, key, ca


def shipped_config() -> dict[str, Any]:
    return yaml.safe_load(SHIPPED_CONFIG.read_text(encoding="utf-8"))


class LokiServer:
    """One Loki process on 127.0.0.1 over a data directory that outlives it (``kill``/``start`` again)."""

    def __init__(self, data_dir: Path, *, tls: TLSFiles | None = None, auth_enabled: bool = True,
                 limits: Mapping[str, Any] | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.limits = dict(limits or {})
        self.tls = tls
        self.auth_enabled = auth_enabled
        self.http_port = free_port()
        self.grpc_port = free_port()
        self.overrides: dict[str, dict[str, Any]] = {}
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / "loki.log"
        self._overrides_path = self.data_dir / "overrides.yml"

    # ---- configuration -------------------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        config = copy.deepcopy(shipped_config())
        data = str(self.data_dir / "data")
        config["auth_enabled"] = self.auth_enabled
        server = config["server"]
        server.update(http_listen_address="127.0.0.1", http_listen_port=self.http_port,
                      grpc_listen_address="127.0.0.1", grpc_listen_port=self.grpc_port, log_level="warn")
        if self.tls is not None:
            server["http_tls_config"] = {"cert_file": str(self.tls.cert), "key_file": str(self.tls.key)}
        common = config["common"]
        common["path_prefix"] = data
        common["storage"]["filesystem"] = {"chunks_directory": f"{data}/chunks", "rules_directory": f"{data}/rules"}
        config["storage_config"]["tsdb_shipper"] = {"active_index_directory": f"{data}/tsdb-index",
                                                    "cache_location": f"{data}/tsdb-cache"}
        config["compactor"]["working_directory"] = f"{data}/compactor"
        config["limits_config"].update(self.limits)
        scheduler = f"127.0.0.1:{self.grpc_port}"
        config["frontend"] = {"scheduler_address": scheduler}
        config["frontend_worker"] = {"scheduler_address": scheduler}
        config["query_scheduler"] = {"use_scheduler_ring": False}
        config["runtime_config"] = {"file": str(self._overrides_path), "period": "100ms"}
        return config

    def set_limits(self, tenant: str | list[str], **limits: Any) -> None:
        """Give ``tenant`` (or each of several) its own limits (Loki's runtime overrides), in force once this
        returns. Set them before the tenant's first push: Loki's rate limiter re-reads a tenant's limit only
        every 10 s."""
        before = self._runtime_config_hash()
        for name in [tenant] if isinstance(tenant, str) else tenant:
            self.overrides[name] = limits
        self._write_overrides()
        reloaded = wait_until(lambda: self._runtime_config_hash() not in (before, None), 10)
        assert reloaded, f"Loki did not reload its runtime overrides within 10 s; its log:\n{self.log_tail()}"

    def _runtime_config_hash(self) -> str | None:
        """The hash Loki publishes of the runtime overrides it runs with (None after a failed reload)."""
        metrics = self.metrics()
        if 'loki_runtime_config_last_reload_successful{config="loki"} 1' not in metrics:
            return None
        found = re.search(r'loki_runtime_config_hash\{config="loki",sha256="(\w+)"\} 1', metrics)
        return found.group(1) if found else None

    def _write_overrides(self) -> None:
        temporary = self._overrides_path.with_suffix(".tmp")
        temporary.write_text(yaml.safe_dump({"overrides": self.overrides}), encoding="utf-8")
        os.replace(temporary, self._overrides_path)  # Loki never reads a half-written file

    # ---- lifecycle -----------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.http_port}"

    def start(self) -> LokiServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_overrides()
        config_path = self.data_dir / "loki.yml"
        config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False), encoding="utf-8")
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen([binary("loki"), f"-config.file={config_path}", *FAST_START_FLAGS],
                                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        finally:
            log.close()
        if not wait_until(self._ready, READY_TIMEOUT_SECONDS):
            self.kill()
            pytest.fail(f"Loki at {self.url} was not ready within {READY_TIMEOUT_SECONDS:.0f} s; its log:\n"
                        + self.log_tail(), pytrace=False)
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"Loki exited with status {self.process.returncode} while starting; its log:\n"
                        + self.log_tail(), pytrace=False)
        try:
            status, body = self.get("/ready", tenant=None)
        except OSError:
            return False
        return status == 200 and body.strip() == b"ready"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Shut down cleanly (SIGTERM: Loki flushes what it holds), waiting for the process to end."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def kill(self) -> None:
        """SIGKILL: what is not in Loki's write-ahead log is lost, as in a crash."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait(30)
        self.process = None

    def __enter__(self) -> LokiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- HTTP ----------------------------------------------------------------------------------------------

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.tls is None:
            return http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=timeout)
        import ssl

        return http.client.HTTPSConnection("127.0.0.1", self.http_port, timeout=timeout,
                                           context=ssl.create_default_context(cafile=str(self.tls.ca)))

    def request(self, method: str, path: str, *, tenant: str | None, body: bytes | None = None,
                headers: Mapping[str, str] | None = None, timeout: float = 30.0) -> tuple[int, bytes]:
        all_headers = dict(headers or {})
        if tenant is not None:
            all_headers["X-Scope-OrgID"] = tenant
        conn = self._connection(timeout)
        try:
            conn.request(method, path, body, all_headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def get(self, path: str, *, tenant: str | None, **params: str) -> tuple[int, bytes]:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        return self.request("GET", path + query, tenant=tenant,
                            headers={"X-Loki-Response-Encoding-Flags": "categorize-labels"})

    def push(self, tenant: str | None, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        """POST a push body as is (the differential test sends the same bytes here and to the stand-in)."""
        return self.request("POST", "/loki/api/v1/push", tenant=tenant, body=body, headers=headers)

    def api(self, path: str, tenant: str, **params: str) -> dict[str, Any]:
        """GET an API path and return its ``data``; fails the test with Loki's answer otherwise."""
        status, body = self.get(path, tenant=tenant, **params)
        assert status == 200, f"Loki answered {status} to {path} {params}: {body[:500]!r}"
        answer = json.loads(body)
        assert answer.get("status") == "success", answer
        return answer["data"]

    def entries(self, tenant: str, query: str, *, start_ns: int | None = None, end_ns: int | None = None,
                limit: int = 5000) -> list[tuple[dict[str, str], int, str, dict[str, str]]]:
        """(stream labels, ts_ns, line, structured metadata) of every entry matching ``query``, oldest first.

        By default the last 3 hours: what the tests write is recent, and a week's range costs Loki a subquery
        per day (0.3 s instead of 5 ms)."""
        now = time.time_ns()
        data = self.api("/loki/api/v1/query_range", tenant, query=query,
                        start=str(start_ns if start_ns is not None else now - 3 * 3600 * 10**9),
                        end=str(end_ns if end_ns is not None else now + 60 * 10**9),
                        limit=str(limit), direction="forward")
        assert data["resultType"] == "streams", data["resultType"]
        rows = [(stream["stream"], int(v[0]), v[1], (v[2] if len(v) > 2 else {}).get("structuredMetadata") or {})
                for stream in data["result"] for v in stream["values"]]
        assert len(rows) < limit, "the answer may be cut at the limit"
        return sorted(rows, key=lambda row: (row[1], row[2]))

    def instant(self, tenant: str, query: str, *, time_ns: int | None = None) -> dict[str, Any]:
        return self.api("/loki/api/v1/query", tenant, query=query, time=str(time_ns or time.time_ns()))

    def wait_for_count(self, tenant: str, query: str, count: int, timeout: float = 20.0) -> list[Any]:
        """The entries of ``query`` once there are ``count`` of them (fails if not within ``timeout``)."""
        rows: list[Any] = []

        def enough() -> bool:
            rows[:] = self.entries(tenant, query)
            return len(rows) >= count

        wait_until(enough, timeout, interval=0.1)
        assert len(rows) == count, f"{len(rows)} entries for {query!r} in tenant {tenant!r}, expected {count}"
        return rows

    def metrics(self) -> str:
        status, body = self.request("GET", "/metrics", tenant=None)
        assert status == 200, status
        return body.decode()

    def discarded(self, tenant: str) -> dict[str, float]:
        """Loki's own count of refused entries for ``tenant``, by reason (``loki_discarded_samples_total``)."""
        counts: dict[str, float] = {}
        for line in self.metrics().splitlines():
            if line.startswith("loki_discarded_samples_total{") and f'tenant="{tenant}"' in line:
                labels, value = line.rsplit(" ", 1)
                reason = labels.split('reason="', 1)[1].split('"', 1)[0]
                counts[reason] = counts.get(reason, 0.0) + float(value)
        return counts

