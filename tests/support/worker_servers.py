"""The multi-worker servers users run, serving ``tests.support.worker_app`` with three workers.

``gunicorn -k uvicorn.workers.UvicornWorker -w 3`` (with ``child_exit`` calling ``mark_process_dead``, from
``tests/support/gunicorn_conf.py``) and ``uvicorn --workers 3``, both in multiprocess mode, each worker
writing its trace records to ``traces/{pid}.jsonl``. ``recycle_after=N`` makes every worker exit after N
requests (gunicorn ``--max-requests``, uvicorn ``--limit-max-requests``) and the server start a new one.

Example::

    with WorkerServer("gunicorn", tmp_path, llm_server.base_url) as app:
        app.wait_ready(deadline)
        answer = app.chat("gpt-4o-mini")   # {"pid", "trace_id", "model"}
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.support.processes import Started, free_port, wait_for

__all__ = ["WorkerServer", "SERVERS", "WORKERS"]

REPO = Path(__file__).resolve().parents[2]
APP = "tests.support.worker_app:app"
WORKERS = 3
SERVERS = ("gunicorn", "uvicorn")
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def _command(kind: str, port: int, recycle_after: int | None) -> list[str]:
    if kind == "gunicorn":
        recycle = ["--max-requests", str(recycle_after)] if recycle_after else []
        return [sys.executable, "-m", "gunicorn", "-k", "uvicorn.workers.UvicornWorker", "-w", str(WORKERS),
                "-b", f"127.0.0.1:{port}", "-c", str(REPO / "tests" / "support" / "gunicorn_conf.py"),
                "--no-control-socket", *recycle, APP]
    if kind == "uvicorn":
        recycle = ["--limit-max-requests", str(recycle_after)] if recycle_after else []
        return [sys.executable, "-m", "uvicorn", "--workers", str(WORKERS), "--host", "127.0.0.1", "--port", str(port),
                "--no-access-log", *recycle, APP]
    raise ValueError(kind)


class WorkerServer:
    def __init__(self, kind: str, tmp: Path, llm_url: str, *, recycle_after: int | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.kind = kind
        root = tmp / kind
        self.multiproc_dir, self.markers, self.traces = root / "prom", root / "workers", root / "traces"
        for path in (self.multiproc_dir, self.markers, self.traces):
            path.mkdir(parents=True)
        port = free_port()
        self.address = f"127.0.0.1:{port}"
        self.url = f"http://{self.address}"
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("LLMMETRICS_", "OPENAI_"))}
        environ.update({
            "PROMETHEUS_MULTIPROC_DIR": str(self.multiproc_dir),
            "LLMMETRICS_TRACE_FILE": str(self.traces / "{pid}.jsonl"),
            "LLMMETRICS_MAX_MODELS": "500",  # the tests give every call a model of its own
            "WORKER_MARKERS": str(self.markers),
            "FAKE_LLM_URL": llm_url,
            "PYTHONPATH": str(REPO),
            **(env or {}),
        })
        self.server = Started(_command(kind, port, recycle_after), root / f"{kind}.log", environ, cwd=REPO)

    # -- the processes ------------------------------------------------------------------------------------------

    def workers(self) -> set[int]:
        """Pids of the live workers (each marked itself at startup)."""
        return {int(p.name) for p in self.markers.iterdir() if _alive(int(p.name))}

    def every_worker_pid(self) -> set[int]:
        """Every worker pid that ever started, dead ones included."""
        return {int(p.name) for p in self.markers.iterdir()}

    def wait_ready(self, deadline: float, without: set[int] = frozenset()) -> set[int]:
        """Until ``WORKERS`` workers are alive (none of them in ``without``) and the app answers."""
        def ready() -> set[int] | None:
            live = self.workers()
            if len(live) != WORKERS or live & without:
                return None
            with urllib.request.urlopen(f"{self.url}/metrics", timeout=5):
                return live

        return wait_for(f"{WORKERS} {self.kind} workers", ready, deadline, [self.server])

    # -- requests -----------------------------------------------------------------------------------------------

    def chat(self, model: str, deadline: float | None = None) -> dict[str, Any]:
        """One ``/chat`` call; retried while no worker accepts (a recycled worker's replacement is starting)."""
        deadline = deadline or time.monotonic() + 60
        url = f"{self.url}/chat?" + urllib.parse.urlencode({"model": model})

        def answer() -> dict[str, Any]:
            with urllib.request.urlopen(url, timeout=30) as response:
                return json.loads(response.read())

        return wait_for(f"an answer from {self.kind} to /chat", answer, deadline, [self.server], interval=0.1)

    def chat_concurrently(self, models: list[str], concurrency: int = 8) -> list[dict[str, Any]]:
        with ThreadPoolExecutor(concurrency) as pool:
            return list(pool.map(self.chat, models))

    def openmetrics(self) -> str:
        """``/metrics`` as Prometheus asks for it with exemplar storage on."""
        request = urllib.request.Request(f"{self.url}/metrics", headers={"Accept": OPENMETRICS})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["Content-Type"].startswith("application/openmetrics-text")
            return response.read().decode()

    # -- what the workers left ----------------------------------------------------------------------------------

    def traced_calls(self) -> dict[str, int]:
        """trace id → pid of the worker whose ``{pid}.jsonl`` holds that call's record."""
        found: dict[str, int] = {}
        for path in self.traces.glob("*.jsonl"):
            for line in path.read_bytes().splitlines():
                if line.strip():
                    record = json.loads(line)
                    if record["kind"] == "call":
                        found[record["trace_id"]] = int(path.stem)
        return found

    def wait_traced(self, answers: list[dict[str, Any]], deadline: float) -> dict[str, int]:
        """Until every answered call's record is in its worker's trace file."""
        wanted = {a["trace_id"] for a in answers}
        return wait_for("the calls' records in the workers' trace files",
                        lambda: found if wanted <= (found := self.traced_calls()).keys() else None,
                        deadline, [self.server])

    def exemplar_files(self) -> list[Path]:
        return sorted(self.multiproc_dir.glob("llmmetrics_exemplars_*.mmap"))

    def __enter__(self) -> WorkerServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.server.stop()


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its server to reap it is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
