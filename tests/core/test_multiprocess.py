"""Multi-worker servers: two worker processes write through prometheus_client's multiprocess mode and one
/metrics endpoint serves their sum (without exemplars, which that mode cannot carry)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

WORKER = textwrap.dedent("""
    import sys, openai, llmmetrics
    llmmetrics.configure(trace_file=sys.argv[2])
    client = llmmetrics.instrument(openai.OpenAI(base_url=sys.argv[1], api_key="k", max_retries=0))
    for _ in range(int(sys.argv[3])):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                       extra_headers={"x-fake-fault": "rate_limit"})
    except openai.RateLimitError:
        pass
    llmmetrics.shutdown()
""")

SERVER = textwrap.dedent("""
    import sys, time, llmmetrics
    server, _ = llmmetrics.start_http_server(int(sys.argv[1]), addr="127.0.0.1")
    print("ready", flush=True)
    sys.stdin.readline()
""")


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_worker_processes_are_summed_on_one_endpoint(tmp_path: Path, llm_server: Any) -> None:
    """Counters and histograms from two processes add up on /metrics; each process wrote its own traces."""
    multiproc = tmp_path / "prom"
    multiproc.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, llm_server.base_url, str(tmp_path / f"w{i}.jsonl"),
                                 str(5 + i)], env=env) for i in range(2)]
    assert [w.wait(timeout=120) for w in workers] == [0, 0]

    port = _free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
    finally:
        assert server.stdin is not None
        server.stdin.write("\n")
        server.stdin.close()
        server.wait(timeout=10)

    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    base = (("model", "gpt-4o-mini"), ("operation", "chat"), ("provider", "openai_compatible"))
    assert samples[("llm_requests_total", tuple(sorted(base + (("status", "ok"),))))] == 5 + 6
    assert samples[("llm_requests_total", tuple(sorted(base + (("status", "error"),))))] == 2
    assert samples[("llm_errors_total", tuple(sorted(base + (("error_type", "RateLimitError"),))))] == 2
    assert samples[("llm_request_duration_seconds_count", tuple(sorted(base + (("status", "ok"),))))] == 11
    records = sum(len((tmp_path / f"w{i}.jsonl").read_bytes().splitlines()) for i in range(2))
    assert records == 13
    assert "trace_id" not in text  # exemplars do not survive multiprocess mode (documented)
