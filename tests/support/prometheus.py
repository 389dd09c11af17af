"""A real Prometheus with exemplar storage, scraping one target every second, on a free loopback port.

Example::

    with Prometheus(tmp_path, "127.0.0.1:8000") as prom:
        prom.wait_until_scraped(deadline)
        ids = prom.exemplar_trace_ids("llm_request_duration_seconds_bucket")
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from tests.support.binaries import binary
from tests.support.processes import Started, free_port, wait_for

__all__ = ["Prometheus"]


class Prometheus:
    def __init__(self, tmp: Path, target: str, *, job: str = "app") -> None:
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [target]}]}],
        }
        path = tmp / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.server = Started([binary("prometheus"), f"--config.file={path}", f"--storage.tsdb.path={tmp / 'prom-data'}",
                               f"--web.listen-address=127.0.0.1:{port}", "--enable-feature=exemplar-storage"],
                              tmp / "prometheus.log")

    def get(self, path: str, **params: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}?{urllib.parse.urlencode(params)}", timeout=5) as response:
            body = json.loads(response.read())
        if body.get("status") != "success":
            raise ValueError(f"{path} failed: {body}")
        return body["data"]

    def wait_until_scraped(self, deadline: float) -> None:
        """Until the target has been scraped successfully at least once."""
        def up() -> bool | None:
            targets = self.get("/api/v1/targets")["activeTargets"]
            return True if targets and all(t["health"] == "up" for t in targets) else None

        wait_for("Prometheus to scrape its target", up, deadline, [self.server])

    def exemplars(self, query: str, since: float) -> list[dict[str, Any]]:
        """``/api/v1/query_exemplars``: one ``{"labels", "trace_id", "value", "timestamp"}`` per stored exemplar."""
        data = self.get("/api/v1/query_exemplars", query=query, start=str(since), end=str(time.time() + 5))
        return [{"labels": series["seriesLabels"], "trace_id": e["labels"].get("trace_id"), "value": float(e["value"]),
                 "timestamp": float(e["timestamp"])} for series in data for e in series["exemplars"]]

    def __enter__(self) -> Prometheus:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.server.stop()
