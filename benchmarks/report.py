"""How long does ``llmmetrics report`` take over 1,000,000 local trace records, how much memory does it hold,
and how big is the page?

Generates the records of ``traces_query.py`` (the wrapper's field set, ~1.4 KB each, 3 % errors, 1,000
users, a feature flag, agent runs, 7 days in time order) and lays them out as the file sink rotates them
(``traces.jsonl.3`` oldest … ``traces.jsonl``), then runs the command in a fresh process per measurement
over the first 10 %, 50 % and 100 % of them. Each process's own CPU time and peak RSS come from
``wait4``. In the same run, on the same files: ``llmmetrics traces --sum cost --by model`` (one full scan
through the same engine: the floor for a question about every record), a bare orjson parse of every line,
and the interpreter with the report imported (what any run costs before reading a record). Results go to
``benchmarks/results/report.json``.

    python benchmarks/report.py                      # 1,000,000 records: ~2 min here
    python benchmarks/report.py --quick              # 20,000 records, to check the setup
    python benchmarks/report.py --records 200000 --keep /tmp/report-bench
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, machine_info, print_table, write_results  # noqa: E402
from traces_query import generate  # noqa: E402

#: The rotated layout: this many files, oldest backup first.
FILES = 4
PARSE_EVERYTHING = """
import orjson
from llmmetrics.traces.local import trace_files
for path in trace_files(sys.argv[1]):
    with open(path, "rb") as lines:
        for line in lines:
            orjson.loads(line)
"""
COMMAND = "from llmmetrics.cli import main\nif main(sys.argv[1:]): raise SystemExit(1)\n"
IMPORT = "import llmmetrics.report.command, llmmetrics.report.page\n"
#: Runs a snippet, then prints the process's own peak RSS. (wait4's ru_maxrss would not do: it starts from
#: the parent's RSS at fork, the benchmark's, whatever the child does.)
MEASURED = """
import sys
exec(compile(sys.argv.pop(1), "<measured>", "exec"))
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        print("peak_rss_kb=" + line.split()[1], file=sys.stderr)
"""


def rotate(source: Path, directory: Path, records: int) -> Path:
    """The first ``records`` lines of ``source`` as a rotated family in ``directory``; returns the live file."""
    directory.mkdir(parents=True, exist_ok=True)
    live = directory / "traces.jsonl"
    per_file = -(-records // FILES)
    names = [live.with_name(f"{live.name}.{n}") for n in range(FILES - 1, 0, -1)] + [live]
    with open(source, "rb") as lines:
        for name in names:
            with open(name, "wb") as out:
                for _, line in zip(range(per_file), lines):
                    out.write(line)
    return live


def measure(snippet: str, *args: str) -> dict[str, float]:
    """Run ``snippet`` with ``args`` in a fresh interpreter; its wall time, CPU seconds (user + system, from
    wait4) and peak RSS (MB, the kernel's high-water mark of that process)."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", MEASURED, snippet, *args], cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE,
                               env={**{k: v for k, v in os.environ.items() if not k.startswith("LLMMETRICS_")},
                                    "PYTHONPATH": str(REPO)})
    errors = process.stderr.read().decode() if process.stderr else ""
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    peak = [line for line in errors.splitlines() if line.startswith("peak_rss_kb=")]
    if os.waitstatus_to_exitcode(status) != 0 or not peak:
        raise SystemExit(f"{snippet.splitlines()[0]} {args} failed: {errors}")
    return {"wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mb": round(int(peak[-1].split("=")[1]) / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", "--calls", type=int, default=1_000_000, help="records at the largest size")
    parser.add_argument("--quick", action="store_true", help="20,000 records")
    parser.add_argument("--keep", type=Path, help="generate into this directory and keep the files")
    parser.add_argument("--results-dir", type=Path)
    options = parser.parse_args()
    records = 20_000 if options.quick else options.records
    machine = machine_info()
    with tempfile.TemporaryDirectory() as tmp:
        work = options.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        generated = work / "generated.jsonl"
        size, _ = generate(generated, records)
        print(f"generated {records:,} records ({size / 1e6:,.0f} MB) in {time.perf_counter() - started:.0f} s",
              flush=True)
        imported = measure(IMPORT)
        rows = []
        for share in (0.1, 0.5, 1.0):
            count = round(records * share)
            live = rotate(generated, work / f"{count}", count)
            page = work / f"report-{count}.html"
            row: dict[str, Any] = {"records": count, "bytes": sum(p.stat().st_size for p in live.parent.glob("traces.jsonl*"))}
            report = measure(COMMAND, "report", "--file", str(live), "-o", str(page))
            scan = measure(COMMAND, "traces", "--file", str(live), "--sum", "cost", "--by", "model")
            parse = measure(PARSE_EVERYTHING, str(live))
            row.update({f"report_{k}": v for k, v in report.items()})
            row.update({f"traces_{k}": v for k, v in scan.items()})
            row.update({f"parse_{k}": v for k, v in parse.items()})
            row["report_over_traces_cpu"] = round(report["cpu_s"] / scan["cpu_s"], 2)
            row["report_rss_over_import_mb"] = round(report["peak_rss_mb"] - imported["peak_rss_mb"], 1)
            row["page_kb"] = round(page.stat().st_size / 1000, 1)
            rows.append(row)
            print(f"  {count:>9,} records: report {report['cpu_s']:.1f} s CPU, {report['peak_rss_mb']:.0f} MB peak; "
                  f"traces scan {scan['cpu_s']:.1f} s; page {row['page_kb']:.0f} KB", flush=True)
    print_table("llmmetrics report over rotated local trace files (one process per row)", rows,
                ["records", "report_wall_s", "report_cpu_s", "report_peak_rss_mb", "traces_cpu_s",
                 "traces_peak_rss_mb", "parse_cpu_s", "parse_peak_rss_mb", "report_over_traces_cpu", "page_kb"])
    print(f"\ninterpreter with the report imported: {imported['peak_rss_mb']:.0f} MB peak RSS, "
          f"{imported['cpu_s']:.2f} s CPU")
    path = write_results("report", {"benchmark": "report", "machine": machine, "records": records, "files": FILES,
                                    "import": imported, "rows": rows}, options.results_dir)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
