"""The fake LLM server's own cost: requests/s it serves on one core, plain and streamed chat, before and after.

*before* is the hand-written HTTP/1.1 server ``llmmetrics/fake_server.py`` was up to commit 2327d1f (read from
git, ``--before-rev``); *after* is ``llmmetrics.fake`` on h11 in this tree. Both answer the same request with
a 60-token chat answer (a 62-chunk stream when streamed, plus ``[DONE]``).

Method: each server runs in its own process pinned to one core; the load comes from this process, pinned to
another core: ``--connections`` keep-alive connections of an asyncio client on h11 (the project parses HTTP
nowhere by hand). The client's own cost does not enter the figure that holds: the server's CPU time per
request is read from the server process alone. Rounds interleave the servers (A B, then B A) so both
meet the same machine state. Reported per server and workload, as medians over rounds: requests/s served
(wall), and the server process's CPU time per request (every thread's run time from ``/proc/<pid>/task/*/schedstat``
over the measured window); ``1e6 / cpu_us`` is what one whole core would serve. Linux only (``/proc``, ``sched_setaffinity``).

    python benchmarks/fake_server.py                  # 3 rounds of 5 s per server and workload: ~2 min
    python benchmarks/fake_server.py --quick          # 1 round of 1 s
    python benchmarks/fake_server.py --calls 2000     # each measurement ends after 2,000 requests (or 5 s)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import h11

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import MESSAGES, MODEL, REPO, machine_info, print_table, stop_process, write_results

BEFORE_REV = "2327d1f"
WORKLOADS = ("chat", "chat_stream")

# The server's process: pin to one core, start, print the port, serve until terminated.
_SERVER = """
import os, sys, threading
cpu = int(sys.argv[1])
if cpu >= 0:
    os.sched_setaffinity(0, {cpu})
if sys.argv[2] == "after":
    from llmmetrics.fake import FakeLLMServer
else:
    import importlib.util
    spec = importlib.util.spec_from_file_location("fake_server_before", sys.argv[3])
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    FakeLLMServer = module.FakeLLMServer
server = FakeLLMServer(seed=1, answer_tokens=(60, 60), max_recorded_requests=0).start()
print(server.port, flush=True)
threading.Event().wait()
"""


class ServerProcess:
    def __init__(self, which: str, cpu: int, before_file: Path) -> None:
        self.which = which
        self.proc = subprocess.Popen([sys.executable, "-c", _SERVER, str(cpu), which, str(before_file)],
                                     stdout=subprocess.PIPE, text=True, cwd=REPO,
                                     env={**os.environ, "PYTHONPATH": str(REPO)})
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"the {which} fake server did not start (printed {line!r})")
        self.port = int(line)

    def cpu_seconds(self) -> float:
        """CPU time of every thread of the server, in nanoseconds' resolution (``schedstat``), else in ticks."""
        tasks = Path(f"/proc/{self.proc.pid}/task")
        try:
            return sum(int((task / "schedstat").read_text().split()[0]) for task in tasks.iterdir()) / 1e9
        except (OSError, ValueError):
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        stop_process(self.proc)


def request_body(stream: bool) -> bytes:
    return json.dumps({"model": MODEL, "messages": MESSAGES, "stream": stream}).encode()


async def _connection(port: int, body: bytes, stop_at: float, limit: int, done: list[int]) -> None:
    """One keep-alive connection sending the request again as soon as the answer is complete (h11 client)."""
    headers = [("host", "127.0.0.1"), ("content-type", "application/json"), ("authorization", "Bearer sk-bench"),
               ("content-length", str(len(body)))]
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    conn = h11.Connection(h11.CLIENT)
    try:
        while time.monotonic() < stop_at and done[0] < limit:
            writer.write(conn.send(h11.Request(method="POST", target="/v1/chat/completions", headers=headers))
                         + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await reader.read(1 << 16))
                elif isinstance(event, h11.Response) and event.status_code != 200:
                    raise RuntimeError(f"unexpected answer {event.status_code}")
                elif isinstance(event, h11.EndOfMessage):
                    break
            conn.start_next_cycle()
            done[0] += 1
    finally:
        writer.close()


async def _load(port: int, request: bytes, seconds: float, connections: int, limit: int | None = None) -> int:
    """Requests answered by ``connections`` busy connections within ``seconds`` (or once ``limit`` are)."""
    done = [0]
    stop_at = time.monotonic() + seconds
    await asyncio.gather(*(_connection(port, request, stop_at, limit or sys.maxsize, done)
                           for _ in range(connections)))
    return done[0]


def measure(server: ServerProcess, workload: str, args: argparse.Namespace) -> dict[str, float]:
    request = request_body(workload == "chat_stream")
    asyncio.run(_load(server.port, request, args.warmup, args.connections))
    cpu0, wall0 = server.cpu_seconds(), time.monotonic()
    served = asyncio.run(_load(server.port, request, args.seconds, args.connections, args.calls))
    cpu, wall = server.cpu_seconds() - cpu0, time.monotonic() - wall0
    return {"requests": served, "requests_per_s": served / wall, "cpu_us_per_request": cpu * 1e6 / max(served, 1),
            "server_core_busy": cpu / wall}


def before_source(rev: str, into: Path) -> Path:
    path = into / "fake_server_before.py"
    try:
        source = subprocess.run(["git", "show", f"{rev}:llmmetrics/fake_server.py"], cwd=REPO, check=True,
                                capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(f"cannot read llmmetrics/fake_server.py at {rev} from git ({exc}); pass --before-rev")
    if "class FakeLLMServer" not in source or "_read_request" not in source:
        raise SystemExit(f"llmmetrics/fake_server.py at {rev} is not the hand-written server; pass --before-rev")
    path.write_text(source)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="measurements per server and workload (default 3)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one measurement (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="load before each measurement (default 1)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent keep-alive connections (default 8)")
    parser.add_argument("--before-rev", default=BEFORE_REV, help=f"commit of the hand-written server ({BEFORE_REV})")
    parser.add_argument("--calls", type=int, default=None, help="end a measurement after this many requests")
    parser.add_argument("--quick", action="store_true", help="1 round of 1 s, 0.3 s warm-up")
    parser.add_argument("--results-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.warmup = 1, 1.0, 0.3
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu, load_cpu = (cpus[0], cpus[1]) if len(cpus) > 1 else (-1, -1)
    if load_cpu >= 0:
        os.sched_setaffinity(0, {load_cpu})
    samples: dict[tuple[str, str], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        before_file = before_source(args.before_rev, Path(tmp))
        servers = {which: ServerProcess(which, server_cpu, before_file) for which in ("before", "after")}
        try:
            for round_no in range(args.rounds):
                order = ("before", "after") if round_no % 2 == 0 else ("after", "before")
                for workload in WORKLOADS:
                    for which in order:
                        sample = measure(servers[which], workload, args)
                        samples.setdefault((which, workload), []).append(sample)
                        print(f"  round {round_no + 1} {which:>6} {workload:<11} {sample['requests_per_s']:8.0f} req/s"
                              f"  {sample['cpu_us_per_request']:7.0f} µs CPU/req", file=sys.stderr, flush=True)
        finally:
            for server in servers.values():
                server.stop()
    rows = []
    for workload in WORKLOADS:
        for which in ("before", "after"):
            runs = samples[(which, workload)]
            cpu_us = statistics.median(s["cpu_us_per_request"] for s in runs)
            rows.append({"server": which, "workload": workload, "rounds": len(runs),
                         "requests_per_s": statistics.median(s["requests_per_s"] for s in runs),
                         "cpu_us_per_request": cpu_us, "one_core_requests_per_s": 1e6 / cpu_us,
                         "server_core_busy": statistics.median(s["server_core_busy"] for s in runs)})
        before, after = rows[-2], rows[-1]
        after["cpu_ratio_vs_before"] = after["cpu_us_per_request"] / before["cpu_us_per_request"]
    print_table("fake server cost (medians over rounds)", rows,
                ["server", "workload", "rounds", "requests_per_s", "cpu_us_per_request", "one_core_requests_per_s",
                 "server_core_busy", "cpu_ratio_vs_before"])
    settings = {"rounds": args.rounds, "seconds": args.seconds, "calls": args.calls, "warmup": args.warmup,
                "connections": args.connections, "before_rev": args.before_rev, "server_cpu": server_cpu,
                "load_cpu": load_cpu, "answer_tokens": 60}
    data: dict[str, Any] = {"benchmark": "fake_server", "machine": machine_info(), "settings": settings, "rows": rows}
    print(f"\nwrote {write_results('fake_server', data, args.results_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
