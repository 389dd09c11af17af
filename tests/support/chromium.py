"""Look at a page as a person would: Debian's headless Chromium, driven over the DevTools protocol.

``binary("chromium")`` is started with no network of its own (no background requests, component updates or
sync), a fresh profile, and ``--remote-debugging-port=0``; the port it picked is read from the
``DevToolsActivePort`` file it writes. A :class:`Page` records what a reader's browser would report: console
messages, uncaught exceptions, log entries (a Content-Security-Policy violation, a failed load) and every
request the page makes. ``Page.evaluate`` inspects the DOM, ``Page.screenshot`` saves a full-page PNG, and
``Page.prefer_dark`` switches ``prefers-color-scheme``.

>>> with Chromium(tmp_path) as browser, browser.page() as page:                       # doctest: +SKIP
...     page.open(Path("report.html").resolve().as_uri())
...     page.evaluate("document.title"), page.problems()

Also a command, for the documentation's screenshots::

    python -m tests.support.chromium llmmetrics-report.html docs/report.png [--dark] [--width 1400] [--height 1200]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import itertools
import json
import subprocess
import tempfile
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from websockets.sync.client import ClientConnection, connect

from tests.support.binaries import binary
from tests.support.loki_server import wait_until

__all__ = ["FLAGS", "Chromium", "Page"]

#: How the browser is started (the machine has no network: nothing may try to reach it).
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0")
START_TIMEOUT_SECONDS = 60.0
ANSWER_TIMEOUT_SECONDS = 60.0


class Chromium:
    """One headless Chromium process with its own profile under ``workdir``."""

    def __init__(self, workdir: Path) -> None:
        self.profile = Path(workdir) / "chromium-profile"
        self.profile.mkdir(parents=True, exist_ok=True)
        self.log = open(Path(workdir) / "chromium.log", "wb")  # noqa: SIM115 (closed with the process)
        self.process = subprocess.Popen(
            [binary("chromium"), *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        port_file = self.profile / "DevToolsActivePort"
        started = wait_until(lambda: port_file.is_file() and port_file.read_text().strip() or self.process.poll() is not None,
                             START_TIMEOUT_SECONDS)
        if not started or self.process.poll() is not None:
            self.close()
            raise RuntimeError(f"chromium did not start its DevTools endpoint (see {self.log.name})")
        self.port = int(port_file.read_text().split()[0])

    def page(self) -> Page:
        """A new tab, connected."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/json/new?about:blank", method="PUT")
        with urllib.request.urlopen(request, timeout=ANSWER_TIMEOUT_SECONDS) as answer:
            target = json.load(answer)
        return Page(target["webSocketDebuggerUrl"])

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)
        self.log.close()

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


class Page:
    """One tab over its DevTools websocket: commands answered in order, events kept for ``problems``."""

    def __init__(self, url: str) -> None:
        self._closing = contextlib.ExitStack()
        self.socket: ClientConnection = self._closing.enter_context(
            connect(url, max_size=None, open_timeout=ANSWER_TIMEOUT_SECONDS))
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Run one DevTools command and return its result (events arriving meanwhile are kept)."""
        command_id = next(self.ids)
        self.socket.send(json.dumps({"id": command_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=ANSWER_TIMEOUT_SECONDS))
            if message.get("id") == command_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str) -> dict[str, Any]:
        """The next event ``method`` (one already received counts)."""
        for index, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(index)
        while True:
            message = json.loads(self.socket.recv(timeout=ANSWER_TIMEOUT_SECONDS))
            if message.get("method") == method:
                return message
            self.events.append(message)

    def open(self, url: str) -> None:
        """Navigate and wait until the page has loaded (its scripts, if any, have run)."""
        self.send("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-serialisable values only)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} raised: {result['exceptionDetails']}")
        return result["result"].get("value")

    def prefer_dark(self, dark: bool) -> None:
        self.send("Emulation.setEmulatedMedia",
                  features=[{"name": "prefers-color-scheme", "value": "dark" if dark else "light"}])

    def screenshot(self, path: Path, *, width: int = 1400, height: int | None = None) -> None:
        """The page at ``width`` CSS pixels, as PNG: its top ``height`` pixels, or all of it."""
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1, mobile=False)
        height = height or self.evaluate("Math.ceil(document.documentElement.scrollHeight)")
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        shot = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": width, "height": height, "scale": 1})
        Path(path).write_bytes(base64.b64decode(shot["data"]))

    def problems(self) -> list[str]:
        """What a reader's browser console would show, and every request beyond the page itself."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled":
                found.append(f"console.{params.get('type')}: {[a.get('value') for a in params.get('args', [])]}")
            elif method == "Runtime.exceptionThrown":
                found.append(f"exception: {params.get('exceptionDetails', {}).get('text')}")
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") in ("error", "warning"):
                entry = params["entry"]
                found.append(f"log {entry.get('level')} ({entry.get('source')}): {entry.get('text')}")
            elif method == "Network.requestWillBeSent" and params.get("type") != "Document":
                found.append(f"request: {params.get('request', {}).get('url')}")
            elif method == "Network.loadingFailed":
                found.append(f"load failed: {params.get('errorText')}")
        return found

    def close(self) -> None:
        self._closing.close()

    def __enter__(self) -> Page:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="screenshot a page with headless Chromium")
    parser.add_argument("page", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, help="only the top of the page, this many pixels")
    parser.add_argument("--dark", action="store_true", help="prefers-color-scheme: dark")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir, Chromium(Path(workdir)) as browser, browser.page() as page:
        page.prefer_dark(options.dark)
        page.open(options.page.resolve().as_uri())
        page.screenshot(options.png, width=options.width, height=options.height)
        for problem in page.problems():
            print(problem)


if __name__ == "__main__":
    main()
