"""Classic histograms vs Prometheus 3.5's custom-bucket native histograms (NHCB) for llmmetrics' metrics.

Run: ``python benchmarks/native_histograms.py [--seconds S] [--repeats N] [--quick]`` with Prometheus 3.5.3
found as ``scripts/test.sh`` provides it (``PROMETHEUS_BIN``; run ``bash scripts/test.sh`` once, or set it).
Prints tables and writes ``benchmarks/results/native_histograms.json``.

One ``llmmetrics demo`` (fixed seed, 30 % errors) is scraped every second by three Prometheus servers at
once, so all three see the same samples, each with the generated rules and the committed scrape job:

- ``classic``: the committed ``prometheus/prometheus.yml`` (classic ``_bucket``/``_sum``/``_count`` series);
- ``classic, _created kept``: the same without its relabelling that drops the ``_created`` series;
- ``nhcb, no flag``: the same job with ``convert_classic_histograms_to_nhcb: true`` alone;
- ``nhcb``: that, with ``--enable-feature=native-histograms`` (each histogram becomes one native series with
  custom buckets; the classic series are no longer stored);
- ``nhcb+classic``: conversion and the flag plus ``always_scrape_classic_histograms: true`` (both stored).

After ``--seconds`` of data it reports, per server: series in the head block (all, and those of the four
histogram families), whether every dashboard panel query and every rule expression returns data, whether the
latency panel still has exemplars, and the median time of each query over ``--repeats`` runs (range queries
over the collected window for panels, instant queries for rules). For the servers with native histograms it
also times the p95 panels rewritten for them (``histogram_quantile`` over the native series), which is what a
dashboard would have to run to drop the classic series.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

import common  # noqa: E402
import yaml  # noqa: E402

from llmmetrics.stack import generate  # noqa: E402
from llmmetrics.stack.options import StackOptions  # noqa: E402
from tests.stack.servers import free_port, get_json, query, start, stop, wait_for  # noqa: E402
from tests.stack.stack_files import substitute, targets  # noqa: E402

_NHCB = {"convert_classic_histograms_to_nhcb": True}
_BOTH = {**_NHCB, "always_scrape_classic_histograms": True}
_NATIVE = ["--enable-feature=native-histograms"]
#: name -> (scrape job settings, extra flags)
MODES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "classic": ({}, []),
    "classic, _created kept": ({"metric_relabel_configs": []}, []),
    "nhcb, no flag": (_NHCB, []),
    "nhcb": (_NHCB, _NATIVE),
    "nhcb+classic": (_BOTH, _NATIVE),
}
HISTOGRAMS = ("llm_request_duration_seconds", "llm_time_to_first_token_seconds", "llm_request_tokens",
              "llmmetrics_loki_push_duration_seconds")
PANEL_VARIABLES = {"__rate_interval": "15s", "__range": "5m", "env": ".*", "model": ".*", "service": "llm-app"}
OPTIONS = StackOptions(spend_rules_interval="5s", daily_budget_usd=1.0)


def prometheus_binary(explicit: str | None) -> str:
    path = explicit or os.environ.get("PROMETHEUS_BIN") or str(
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "llmmetrics/servers/prometheus-3.5.3/prometheus")
    if not os.access(path, os.X_OK):
        sys.exit(f"no Prometheus 3.5 at {path}: run `bash scripts/test.sh` once (it downloads it) or set PROMETHEUS_BIN")
    return path


def prometheus_config(tmp: Path, app_port: int, scrape_settings: dict[str, Any]) -> Path:
    rules = tmp / "rules"
    rules.mkdir(parents=True)
    for relative, text in generate.render(OPTIONS).items():
        if relative.startswith("prometheus/rules/"):
            (rules / Path(relative).name).write_text(text)
    scrape = yaml.safe_load((common.REPO / "prometheus" / "prometheus.yml").read_text())["scrape_configs"][0]
    scrape["static_configs"][0]["targets"] = [f"127.0.0.1:{app_port}"]
    scrape.update(scrape_settings)
    config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "5s"},
              "rule_files": ["rules/*.yml"], "scrape_configs": [scrape]}
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def panel_queries() -> dict[str, str]:
    overview = json.loads(generate.render(OPTIONS)["grafana/dashboards/llm-overview.json"])
    return {f"{p['title']} / {t['refId']}": substitute(t["expr"], PANEL_VARIABLES) for p, t in targets(overview, "prometheus")}


def rule_queries() -> dict[str, str]:
    found = {}
    for relative, text in generate.render(OPTIONS).items():
        if relative.startswith("prometheus/rules/"):
            for group in yaml.safe_load(text)["groups"]:
                for rule in group["rules"]:
                    name = rule.get("record") or rule["alert"]
                    found[name if name not in found else f"{name} #{len(found)}"] = rule["expr"]
    return found


def native_rewrite(expr: str) -> str | None:
    """The classic p-quantile panel rewritten for native histograms, or None for other queries."""
    if not expr.startswith("histogram_quantile("):
        return None
    return re.sub(r"by \(le, ", "by (", expr.replace("_bucket{", "{"))


def timed(prom: str, expr: str, repeats: int, window: tuple[float, float] | None) -> tuple[float, int]:
    """(median milliseconds, series returned) of ``repeats`` runs: a range query over ``window`` or an instant one."""
    params = {"query": expr}
    path = "query"
    if window:
        path = "query_range"
        params.update(start=str(window[0]), end=str(window[1]), step="5")
    url = f"{prom}/api/v1/{path}?" + urllib.parse.urlencode(params)
    times, series = [], 0
    for _ in range(repeats):
        began = time.perf_counter()
        body = get_json(url)
        times.append((time.perf_counter() - began) * 1000)
        series = len(body["data"]["result"])
    return statistics.median(times), series


def series_by_name(prom: str) -> dict[str, int]:
    return {r["metric"]["__name__"]: int(float(r["value"][1]))
            for r in query(prom, 'count by (__name__) ({__name__=~".+"})')}


def head_series(prom: str) -> dict[str, int]:
    counts = {"all": int(get_json(f"{prom}/api/v1/status/tsdb")["data"]["headStats"]["numSeries"])}
    for family in HISTOGRAMS:
        result = query(prom, f'count({{__name__=~"{family}(_bucket|_sum|_count)?"}})')
        counts[family] = int(float(result[0]["value"][1])) if result else 0
    return counts


def exemplar_count(prom: str, expr: str, window: tuple[float, float]) -> int:
    body = get_json(f"{prom}/api/v1/query_exemplars?" + urllib.parse.urlencode(
        {"query": expr, "start": str(window[0]), "end": str(window[1])}))
    return sum(len(s["exemplars"]) for s in body["data"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=180, help="seconds of data before measuring")
    parser.add_argument("--repeats", type=int, default=30, help="runs of each query for its median time")
    parser.add_argument("--quick", action="store_true", help="40 s of data, 3 runs per query")
    parser.add_argument("--calls", type=int, help="agent runs per second of the demo (default 8)")
    parser.add_argument("--prometheus", help="Prometheus 3.5 binary (default: PROMETHEUS_BIN, then the cache)")
    parser.add_argument("--results-dir", type=Path)
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.repeats = 40, 3
    binary = prometheus_binary(args.prometheus)
    machine = common.machine_info()
    tmp = Path(tempfile.mkdtemp(prefix="nhcb-bench-"))
    app_port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY" and not k.startswith("LLMMETRICS_")}
    env["PYTHONPATH"] = str(common.REPO)
    procs = [start([sys.executable, "-m", "llmmetrics", "demo", "--host", "127.0.0.1", "--port", str(app_port),
                    "--duration", "0", "--error-rate", "0.3", "--rate", str(args.calls or 8), "--seed", "7",
                    "--llm", "fake", "--trace-file", str(tmp / "traces.jsonl"), "--quiet"], tmp / "demo.log", env)]
    servers: dict[str, str] = {}
    try:
        for name, (scrape_settings, flags) in MODES.items():
            port = free_port()
            work = tmp / re.sub(r"\W+", "-", name)
            work.mkdir()
            procs.append(start([binary, f"--config.file={prometheus_config(work, app_port, scrape_settings)}",
                                f"--storage.tsdb.path={work / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                                "--enable-feature=exemplar-storage", *flags], work / "prometheus.log"))
            servers[name] = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        for name, prom in servers.items():
            wait_for(f"{name} to scrape the demo", lambda p=prom: True if any(
                t["health"] == "up" for t in get_json(f"{p}/api/v1/targets")["data"]["activeTargets"]) else None,
                deadline, procs)
        began = time.time()
        time.sleep(args.seconds)
        window = (began, time.time())
        panels, rules = panel_queries(), rule_queries()
        latency = next(e for t, e in panels.items() if t.startswith("p95 latency by model"))
        rows, per_query = [], {}
        for name, prom in servers.items():
            series = head_series(prom)
            panel_times = {t: timed(prom, e, args.repeats, window) for t, e in panels.items()}
            rule_times = {t: timed(prom, e, args.repeats, None) for t, e in rules.items()}
            native = {t: timed(prom, native_rewrite(e), args.repeats, window)
                      for t, e in panels.items() if native_rewrite(e) and name != "classic"}
            per_query[name] = {"panels": panel_times, "rules": rule_times, "native_p95_panels": native,
                               "series_by_name": series_by_name(prom)}
            rows.append({
                "server": name, "head_series": series["all"], **{f"{f}_series": series[f] for f in HISTOGRAMS[:3]},
                "panels_with_data": f"{sum(1 for _, n in panel_times.values() if n)}/{len(panel_times)}",
                "rules_with_data": f"{sum(1 for _, n in rule_times.values() if n)}/{len(rule_times)}",
                "latency_exemplars": exemplar_count(prom, latency, window),
                "native_exemplars": exemplar_count(prom, "llm_request_duration_seconds", window),
                "panels_ms_total": round(sum(ms for ms, _ in panel_times.values()), 2),
                "rules_ms_total": round(sum(ms for ms, _ in rule_times.values()), 2),
                "p95_panels_classic_ms": round(sum(panel_times[t][0] for t in panels if native_rewrite(panels[t])), 2),
                "p95_panels_native_ms": round(sum(ms for ms, _ in native.values()), 2) if native else None,
                "native_p95_panels_with_data": f"{sum(1 for _, n in native.values() if n)}/{len(native)}" if native else None,
            })
            rows[-1]["empty_panels"] = [t for t, (_, n) in panel_times.items() if not n]
            rows[-1]["empty_rules"] = [t for t, (_, n) in rule_times.items() if not n]
    finally:
        stop(procs)
    common.print_table(f"NHCB vs classic: {args.seconds:.0f} s of data, median of {args.repeats} runs per query "
                       f"(Prometheus at {binary})", rows,
                       ("server", "head_series", "llm_request_duration_seconds_series", "panels_with_data",
                        "rules_with_data", "latency_exemplars", "native_exemplars", "panels_ms_total", "rules_ms_total",
                        "p95_panels_classic_ms", "p95_panels_native_ms", "native_p95_panels_with_data"))
    for row in rows:
        if row["empty_panels"] or row["empty_rules"]:
            print(f"\n{row['server']}: no data for panels {row['empty_panels']} and rules {row['empty_rules']}")
    names = {n: q["series_by_name"] for n, q in per_query.items()}
    differing = sorted(m for m in set().union(*names.values()) if len({c.get(m, 0) for c in names.values()}) > 1)
    common.print_table("Series per metric name where the servers differ", [
        {"metric": m, **{n: c.get(m, 0) for n, c in names.items()}} for m in differing], ("metric", *names))
    path = common.write_results("native_histograms", {
        "benchmark": "native_histograms", "machine": machine, "prometheus": binary, "seconds": args.seconds,
        "repeats": args.repeats, "modes": {n: {"scrape": m[0], "flags": m[1]} for n, m in MODES.items()}, "rows": rows, "per_query_ms_and_series": per_query,
    }, args.results_dir)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
