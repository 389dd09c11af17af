"""A throwaway certificate authority and a real HTTP proxy (tinyproxy) on 127.0.0.1, for the TLS and proxy
tests of the Loki reads and pushes. Both are real: ``openssl`` signs a server certificate for 127.0.0.1 with
a CA made in the test's directory, and the proxy forwards (``GET http://…``) and tunnels (``CONNECT``) the
requests, logging each one, so a test can tell that traffic went through it.

>>> tls = make_tls(tmp_path)                                                      # doctest: +SKIP
>>> with TinyProxy(tmp_path) as proxy:                                            # doctest: +SKIP
...     os.environ["HTTPS_PROXY"] = proxy.url
"""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.binaries import binary
from tests.support.loki_server import LokiServer, TLSFiles, free_port, wait_until

__all__ = ["TinyProxy", "make_tls", "no_proxy_environment", "proxy", "tls_loki"]


def make_tls(directory: Path) -> TLSFiles:
    """A CA and a certificate for 127.0.0.1 (subjectAltName IP) signed by it, valid for a day."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (directory / n for n in ("ca.key", "ca.pem", "server.key", "server.csr",
                                                          "server.pem"))
    ext = directory / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,"
                   "keyEncipherment\nextendedKeyUsage=serverAuth\n")
    openssl = binary("openssl")
    for args in (
        ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
         "-subj", "/CN=llmmetrics test CA", "-keyout", ca_key, "-out", ca],
        ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=127.0.0.1",
         "-keyout", key, "-out", csr],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "1",
         "-extfile", ext, "-out", cert],
    ):
        done = subprocess.run([openssl, *map(str, args)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    return TLSFiles(cert, key, ca)


class TinyProxy:
    """tinyproxy in the foreground on a free port of 127.0.0.1, allowing only 127.0.0.1, logging requests."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.log_path = directory / "tinyproxy.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TinyProxy:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "tinyproxy.conf"
        # no ConnectPort line: CONNECT is allowed to any port (Loki's is a free one)
        config.write_text(f"Port {self.port}\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 30\nMaxClients 20\n"
                          f"LogFile \"{self.log_path}\"\nLogLevel Connect\nDisableViaHeader Yes\n")
        self.process = subprocess.Popen([binary("tinyproxy"), "-d", "-c", str(config)], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        if not wait_until(self._listening, 10):
            self.stop()
            pytest.fail(f"tinyproxy did not listen on {self.url} within 10 s; its log:\n{self.log()}", pytrace=False)
        return self

    def _listening(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"tinyproxy exited with status {self.process.returncode}; its log:\n{self.log()}",
                        pytrace=False)
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def requests(self) -> list[str]:
        """The request lines the proxy served, e.g. ``GET http://127.0.0.1:3100/...`` or ``CONNECT 127.0.0.1:3100``."""
        return re.findall(r'Request \(file descriptor \d+\): (.+)', self.log())

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
            self.process = None

    def __enter__(self) -> TinyProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="session")
def tls_loki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LokiServer]:
    """A second real Loki, serving HTTPS (server.http_tls_config) with a certificate from a throwaway CA."""
    directory = Path(tmp_path_factory.mktemp("tls-loki"))
    with LokiServer(directory / "loki", tls=make_tls(directory / "tls")) as server:
        yield server


@pytest.fixture(scope="session")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyProxy]:
    """A real HTTP proxy on 127.0.0.1 (tinyproxy) for the session."""
    with TinyProxy(Path(tmp_path_factory.mktemp("proxy"))) as server:
        yield server


@pytest.fixture()
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Start each proxy test from an environment without proxy or CA settings (the caller's may have some)."""
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch
