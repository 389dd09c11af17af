"""llmmetrics side by side with the best-known peers, each in a fresh process on the same harness.

Run: ``python benchmarks/peers.py [--quick] [--calls N] [--only NAME ...] [--venvs DIR]``. Prints a table
and writes ``benchmarks/results/peers.json``.

Each peer gets its own virtualenv (``--venvs``, default ``~/.cache/llmmetrics/bench-venvs/<peer>``), created
with pip on first use, because their dependency pins conflict with each other and with ours. A peer that
needs an older ``openai`` (OpenLIT pins ``openai<3``) gets it there: its bare client runs in the same venv,
so its ratio to bare stays valid, and the table says which openai each row used. A peer that fails to
install or import is skipped, and the table and the JSON say so and why.

Each runner (``benchmarks/peers/run_<peer>.py``) measures bare vs peer interleaved call by call in its own
process, and prints one ``RESULT {json}`` line. llmmetrics itself is measured by a runner of the same kind,
so every row comes from the same harness. Telemetry that a peer exports over HTTP goes to a local
accept-all endpoint served from this (otherwise idle) process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

RUNNERS = common.BENCH_DIR / "peers"

#: peer → pip requirements tried in order (the first that installs wins) and the module that must import.
PEERS: dict[str, dict[str, Any]] = {
    "openllmetry": {"requirements": [["openai>=3", "opentelemetry-sdk", "opentelemetry-instrumentation-openai"],
                                     ["opentelemetry-sdk", "opentelemetry-instrumentation-openai"]],
                    "imports": "opentelemetry.instrumentation.openai"},
    # OpenLIT pins openai<3, and its newest releases do not resolve against the OpenTelemetry packages on PyPI
    # (pip backtracks for many minutes): the newest set seen to install and import, then plain "openlit"
    "openlit": {"requirements": [["openlit==1.34.43", "opentelemetry-api==1.37.0", "opentelemetry-sdk==1.37.0",
                                  "opentelemetry-exporter-otlp==1.37.0", "opentelemetry-instrumentation==0.58b0",
                                  "opentelemetry-semantic-conventions==0.58b0"], ["openlit"]],
                "imports": "openlit"},
    "langfuse": {"requirements": [["openai>=3", "langfuse"], ["langfuse"]], "imports": "langfuse.openai"},
    "litellm": {"requirements": [["openai>=3", "litellm"], ["litellm"]], "imports": "litellm"},
}
INSTALL_TIMEOUT = 600.0


def default_venvs() -> Path:
    return Path(os.environ.get("LLMMETRICS_BENCH_VENVS", Path.home() / ".cache" / "llmmetrics" / "bench-venvs"))


def ensure_venv(name: str, root: Path) -> tuple[Path | None, str]:
    """The peer's interpreter, creating and filling its venv if needed; (None, why) if that fails."""
    spec = PEERS[name]
    venv = root / name
    python = venv / "bin" / "python"
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    check = [str(python), "-c", f"import {spec['imports']}, openai; print(openai.__version__)"]
    if python.exists():
        ok = subprocess.run(check, capture_output=True, text=True, timeout=300, env=env)
        if ok.returncode == 0:
            return python, _openai_note(ok.stdout) + " (existing venv)"
    root.mkdir(parents=True, exist_ok=True)
    if not python.exists():
        made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
        if made.returncode != 0:
            return None, f"venv creation failed: {made.stderr.strip()[-300:]}"
    errors = []
    for requirements in spec["requirements"]:
        print(f"  installing {name}: pip install {' '.join(requirements)}", flush=True)
        try:
            done = subprocess.run([str(python), "-m", "pip", "install", "-q", *requirements],
                                  capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
        except subprocess.TimeoutExpired:
            errors.append(f"pip install {' '.join(requirements)} timed out after {INSTALL_TIMEOUT:.0f} s")
            continue
        if done.returncode != 0:
            tail = [ln for ln in done.stderr.splitlines() if "is ignored" not in ln][-3:]
            errors.append(f"pip install {' '.join(requirements)} failed: {' | '.join(tail)[-400:]}")
            continue
        ok = subprocess.run(check, capture_output=True, text=True, timeout=300, env=env)
        if ok.returncode == 0:
            return python, _openai_note(ok.stdout)
        errors.append(f"import {spec['imports']} failed: {ok.stderr.strip()[-400:]}")
    return None, "; ".join(errors)


def _openai_note(printed: str) -> str:
    version = printed.strip().splitlines()[-1]
    major = version.split(".")[0]
    return f"openai {version}" + (" (the peer requires openai<3; bare measured with it too)"
                                  if major.isdigit() and int(major) < 3 else "")


def run_runner(python: Path, runner: str, args: argparse.Namespace, collector: str) -> dict[str, Any]:
    """Run one runner in a fresh process; its ``RESULT`` line, or an error saying what went wrong."""
    cmd = [str(python), str(RUNNERS / runner), "--calls", str(args.calls), "--cpu-calls", str(args.cpu_calls),
           "--cpu-blocks", str(args.cpu_blocks), "--collector", collector]
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": ""}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"runner timed out after {args.timeout:.0f} s"}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return {"error": f"runner exited {done.returncode}: {done.stderr.strip()[-600:]}"}


def compare(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Table rows: each peer's added time/CPU next to llmmetrics' for the same workload."""
    ours = {(r["mode"], r["workload"]): r for r in results.get("llmmetrics", {}).get("rows", []) if "error" not in r}
    rows = []
    for peer, result in results.items():
        if "rows" not in result:
            rows.append({"peer": peer, "workload": "-", "note": result.get("skipped") or result.get("error")})
            continue
        openai_version = result.get("machine", {}).get("openai")
        for r in result["rows"]:
            row = {"peer": peer, "openai": openai_version, "workload": f"{r['mode']} {r['workload']}"}
            if "error" in r:
                row["note"] = r["error"]
                rows.append(row)
                continue
            mine = ours.get((r["mode"], r["workload"]))
            row.update({"n": r["n"], "bare_median_us": r["bare_median_us"], "added_us": r["paired_added_us"],
                        "ratio": r["ratio"], "added_cpu_us": r.get("added_cpu_us")})
            if mine is not None and peer != "llmmetrics":
                row["x_llmmetrics_time"] = _times(r["paired_added_us"], mine["paired_added_us"])
                row["x_llmmetrics_cpu"] = _times(r.get("added_cpu_us"), mine.get("added_cpu_us"))
            rows.append(row)
    return rows


def _times(theirs: float | None, ours: float | None) -> float | None:
    """How many times llmmetrics' added cost the peer's is (None when ours is within noise of zero)."""
    if theirs is None or ours is None or ours <= 0.5:
        return None
    return round(theirs / ours, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=None, help="pairs per workload (default 1000; streams a quarter)")
    parser.add_argument("--quick", action="store_true", help="150 pairs per workload, to check the setup")
    parser.add_argument("--cpu-calls", type=int, default=None, help="calls per CPU block")
    parser.add_argument("--cpu-blocks", type=int, default=None, help="blocks of each variant for CPU per call")
    parser.add_argument("--only", nargs="*", choices=sorted(PEERS), default=None, help="peers to run")
    parser.add_argument("--venvs", type=Path, default=default_venvs(), help="where the peer venvs live")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one runner may take")
    parser.add_argument("--results-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    args.calls = args.calls or (150 if args.quick else 1000)
    args.cpu_calls = args.cpu_calls or (40 if args.quick else 250)
    args.cpu_blocks = args.cpu_blocks or (2 if args.quick else 5)

    started = time.perf_counter()
    collector = common.AcceptAll()
    results: dict[str, dict[str, Any]] = {}
    installs: dict[str, str] = {}
    try:
        print("llmmetrics: measuring in a fresh process", flush=True)
        results["llmmetrics"] = run_runner(Path(sys.executable), "run_llmmetrics.py", args, collector.url)
        for name in args.only if args.only is not None else sorted(PEERS):
            python, how = ensure_venv(name, args.venvs)
            installs[name] = how
            if python is None:
                print(f"{name}: SKIPPED ({how})", flush=True)
                results[name] = {"skipped": f"not installed: {how}"}
                continue
            print(f"{name}: measuring ({how})", flush=True)
            results[name] = run_runner(python, f"run_{name}.py", args, collector.url)
    finally:
        collector.stop()

    rows = compare(results)
    data = {"benchmark": "peers", "machine": common.machine_info(),
            "settings": {"pairs": args.calls, "stream_pairs": max(50, args.calls // 4), "cpu_calls": args.cpu_calls,
                         "cpu_blocks": args.cpu_blocks, "venvs": str(args.venvs)},
            "installs": installs, "collector_requests": collector.stats["requests"], "results": results,
            "table": rows, "seconds": round(time.perf_counter() - started, 1)}
    path = common.write_results("peers", data, args.results_dir)
    common.print_table("Peers vs bare client, each in its own process (µs per call; x_llmmetrics = peer's added "
                       "cost ÷ llmmetrics' added cost for the same workload)", rows,
                       ("peer", "openai", "workload", "n", "bare_median_us", "added_us", "ratio", "added_cpu_us",
                        "x_llmmetrics_time", "x_llmmetrics_cpu", "note"))
    print(f"\ntook {data['seconds']} s; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
