"""The benchmark scripts run end to end and write well-formed results (tiny sizes; no timing asserts).

The benchmarks are the record of performance; these tests only prove that each script still executes
against the current code and writes the JSON its README table is built from.
"""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "benchmarks"
NUMBER = (int, float)


def run(script: str, *args: str, results: Path, timeout: float = 300) -> dict:
    done = subprocess.run([sys.executable, str(BENCH / script), *args, "--results-dir", str(results)],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    name = script.removesuffix(".py")
    path = results / f"{name}.json"
    assert path.exists(), f"{script} wrote no {path.name}"
    data = json.loads(path.read_text())
    assert data["benchmark"] == name
    machine = data["machine"]
    assert machine["cores"] >= 1 and machine["python"] and machine["openai"].split(".")[0].isdigit()
    return data


def assert_timed(row: dict) -> None:
    for key in ("n", "bare_median_us", "median_us", "added_us", "paired_added_us", "bare_p99_us", "p99_us", "ratio"):
        assert isinstance(row[key], NUMBER), f"{key} missing or not a number in {row}"
    assert row["bare_median_us"] > 0 and row["median_us"] > 0


@pytest.mark.timeout(600)
def test_overhead_runs_every_mode_and_workload(tmp_path: Path) -> None:
    """overhead.py measures stub, in-process sync/async and loopback for chat, stream and responses, Claude's
    three calls on the fake server, and the call path with OpenTelemetry imported."""
    data = run("overhead.py", "--quick", "--calls", "30", results=tmp_path)
    seen = {(r["mode"], r["workload"]) for r in data["rows"]}
    for mode in ("callpath-stub", "inprocess-sync", "inprocess-async", "loopback-sync"):
        for workload in ("chat", "chat_stream", "responses"):
            assert (mode, workload) in seen, f"missing {mode} {workload}"
    assert ("inprocess-sync", "chat_stream_usage") in seen and ("inprocess-sync", "chat_floor") in seen
    for workload in ("claude", "claude_stream", "claude_stream_helper"):
        assert ("loopback-sync", workload) in seen, f"missing Claude row {workload}"
    assert {("callpath-stub", "chat_otel_imported"), ("callpath-stub", "chat_otel_span")} <= seen
    assert data["claude"]["content_block_deltas"] >= 50 and "chat_otel_span_minus_chat" in data["trace_context"]
    floor = data["floor"]
    assert isinstance(floor["llmmetrics_added_us"], NUMBER) and isinstance(floor["floor_added_us"], NUMBER)
    for row in data["rows"]:
        assert_timed(row)
        if row["mode"] != "loopback-sync" and not row["workload"].endswith(("_floor", "_long")):
            assert isinstance(row["added_cpu_us"], NUMBER)
    assert {("callpath-stub", w) for w in ("chat_stream_long", "chat_stream_floor", "chat_stream_long_floor",
                                            "responses_stream_long", "responses_stream_floor")} <= seen
    assert {("inprocess-sync", "chat_stream_floor"), ("inprocess-sync", "responses_stream_floor")} <= seen
    for kind in ("chat_stream", "responses_stream"):
        assert isinstance(data["per_chunk"][kind]["callpath_llmmetrics"], NUMBER)
        assert isinstance(data["per_chunk"][kind]["callpath_floor"], NUMBER)
    goals = {g["goal"] for g in data["stream_goals"]}
    assert len(goals) >= 9 and all(isinstance(g["met"], bool) for g in data["stream_goals"])
    assert_timed(data["ttft"])
    assert_timed(data["ttft_responses"])
    assert data["settings"]["stream_chunks_seen"] >= 50
    assert data["records_emitted"] > 0, "the instrumented side emitted no trace records"


@pytest.mark.timeout(600)
def test_first_token_helpers_leave_the_rest_of_the_stream_to_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first-token rows time the stream up to its first item, then read the rest untimed: the helpers hand
    back the stream's iterator just past that item (an earlier one returned the chunk itself, whose fields the
    untimed loop then read, leaving every such stream unread)."""
    monkeypatch.syspath_prepend(str(BENCH))
    import overhead

    assert list(overhead.first_chat_chunk(["role", "a", "b"])) == ["a", "b"]
    events = [types.SimpleNamespace(type=t) for t in ("response.created", "response.output_text.delta", "x", "y")]
    assert [e.type for e in overhead.first_text_delta(events)] == ["x", "y"]


def test_instructions_counts_both_sides_of_a_stream(tmp_path: Path) -> None:
    """instructions.py runs the bare and instrumented children under callgrind and reports per-call counts
    and the per-chunk figure (valgrind is installed by scripts/test.sh)."""
    data = run("instructions.py", "--calls", "1", "--workloads", "chat", "chat_stream", "chat_stream_ttft",
               results=tmp_path)
    rows = {r["workload"]: r for r in data["rows"]}
    assert set(rows) == {"chat", "chat_stream", "chat_stream_ttft"}
    for row in rows.values():
        assert row["bare_caller"] > 1_000_000 and row["bare_all"] >= row["bare_caller"] * 0.9
        assert all(isinstance(row[k], int) for k in ("added_caller", "added_all"))
    assert rows["chat_stream"]["bare_caller"] > 5 * rows["chat"]["bare_caller"]  # 62 chunks, each built
    assert isinstance(data["per_item"]["chat_stream"]["added_caller_per_item"], NUMBER)
    # the first-token path stops after one chunk: far less than the whole stream, and its share is reported
    assert rows["chat_stream_ttft"]["bare_caller"] < rows["chat_stream"]["bare_caller"] / 3
    assert set(data["first_token_pct"]) == {"chat_stream_ttft"}
    assert isinstance(data["first_token_pct"]["chat_stream_ttft"], NUMBER)


@pytest.mark.timeout(600)
def test_peers_runs_llmmetrics_through_the_peer_harness(tmp_path: Path) -> None:
    """peers.py with no peers selected still measures llmmetrics in a fresh process and writes the table."""
    data = run("peers.py", "--calls", "20", "--cpu-calls", "10", "--cpu-blocks", "1", "--only", results=tmp_path)
    ours = data["results"]["llmmetrics"]
    assert "rows" in ours, ours.get("error")
    assert {(r["mode"], r["workload"]) for r in ours["rows"]} >= {("sync", "chat"), ("sync", "chat_stream"),
                                                                   ("sync", "responses"), ("async", "chat")}
    for row in ours["rows"]:
        assert "error" not in row, row["error"]
        assert_timed(row)
    assert [r["peer"] for r in data["table"]] == ["llmmetrics"] * len(ours["rows"])
    assert data["collector_requests"] > 0, "the Loki sink pushed nothing to the local endpoint"


@pytest.mark.timeout(600)
def test_dead_backend_measures_live_refused_and_stalled(tmp_path: Path) -> None:
    """dead_backend.py reports overhead and the Loki queue for each backend state, within the cap."""
    data = run("dead_backend.py", "--calls", "30", "--queue-bytes", "50000", results=tmp_path)
    rows = {r["state"]: r for r in data["rows"]}
    assert set(rows) == {"live", "refused", "stalled"}
    for row in rows.values():
        assert_timed(row)
        assert row["queue_within_cap"], row
        assert row["queue_cap_bytes"] == 50000


@pytest.mark.timeout(600)
def test_memory_samples_rss_and_holds_the_model_cap(tmp_path: Path) -> None:
    """memory.py samples RSS over the run and keeps llm_requests_total at the model cardinality cap."""
    data = run("memory.py", "--calls", "200", "--models", "120", results=tmp_path)
    rss = data["rss"]
    assert len(rss["samples"]) == 11 and rss["samples"][-1]["calls"] == 200
    assert all(s["rss_mb"] > 0 for s in rss["samples"])
    card = data["cardinality"]
    assert card["distinct_models_called"] == 120
    assert card["model_label_values"] == card["max_models"] + 1 and card["other_present"]
    assert card["model_overflow_total"] == 120 - card["max_models"]


@pytest.mark.timeout(600)
def test_native_histograms_compares_classic_and_nhcb_on_the_real_prometheus(tmp_path: Path) -> None:
    """native_histograms.py scrapes one demo with every mode and reports series, data and query times per server."""
    from tests.support.binaries import binary

    data = run("native_histograms.py", "--seconds", "12", "--repeats", "1", "--prometheus", binary("prometheus"),
               results=tmp_path)
    rows = {r["server"]: r for r in data["rows"]}
    assert set(rows) == {"classic", "classic, _created kept", "nhcb, no flag", "nhcb", "nhcb+classic"}
    for row in rows.values():
        assert row["head_series"] > 0 and isinstance(row["panels_ms_total"], NUMBER)
    panels, total = rows["classic"]["panels_with_data"].split("/")
    assert int(total) >= 18


@pytest.mark.timeout(600)
def test_fake_server_measures_both_servers_on_both_workloads(tmp_path: Path) -> None:
    """fake_server.py loads the hand-written server from git and llmmetrics.fake, and reports each one's cost."""
    data = run("fake_server.py", "--quick", "--calls", "200", results=tmp_path)
    rows = {(r["server"], r["workload"]): r for r in data["rows"]}
    assert set(rows) == {(s, w) for s in ("before", "after") for w in ("chat", "chat_stream")}
    for row in rows.values():
        assert row["requests_per_s"] > 0 and row["cpu_us_per_request"] > 0 and row["one_core_requests_per_s"] > 0
    assert isinstance(rows[("after", "chat")]["cpu_ratio_vs_before"], NUMBER)


def test_pii_redaction_times_every_kind_against_the_secret_scrub(tmp_path: Path) -> None:
    """pii_redaction.py times the secret scrub, each kind and all five on every record set, and the pipeline."""
    data = run("pii_redaction.py", "--quick", results=tmp_path)
    sets = {r["records"] for r in data["rows"]}
    assert len(sets) == 6
    for name in sets:
        variants = {r["variant"] for r in data["rows"] if r["records"] == name}
        assert variants == {"secret scrub (bar)", "email", "phone", "card", "ipv4", "ipv6", "all five kinds"}
    for row in data["rows"] + data["pipeline"]:
        assert isinstance(row["us_per_kb"], NUMBER) and row["us_per_kb"] >= 0 and row["record_kb"] > 0
    assert [r["variant"] for r in data["pipeline"]] == ["pipeline", "pipeline + redact_pii (all kinds)"]


@pytest.mark.timeout(600)
def test_multiprocess_measures_the_exemplar_store_and_the_scrape(tmp_path: Path) -> None:
    """multiprocess.py times the counting step with and without the shared table, and /metrics over three
    workers' files with both collectors in both formats, exemplars served."""
    data = run("multiprocess.py", "--calls", "2000", "--scrapes", "2", results=tmp_path)
    for row in (data["exporter"]["counting"], data["exporter"]["client"]):
        assert_timed(row)
    rows = {r["format"]: r for r in data["scrape"]["rows"]}
    assert set(rows) == {"collect only", "text", "openmetrics"}
    for row in rows.values():
        assert row["prometheus_client_ms"] > 0 and row["llmmetrics_ms"] > 0 and isinstance(row["paired_added_ms"], NUMBER)
    assert data["scrape"]["exemplars_served"] > 0
    assert rows["openmetrics"]["llmmetrics_bytes"] > rows["openmetrics"]["prometheus_client_bytes"]  # the exemplars
    assert isinstance(data["summary"]["store_added_us_per_call"], NUMBER)


def test_report_measures_each_size_against_a_traces_scan(tmp_path: Path) -> None:
    """report.py writes a page at each size and measures it next to a traces scan and a bare parse."""
    data = run("report.py", "--records", "3000", results=tmp_path)
    assert [r["records"] for r in data["rows"]] == [300, 1500, 3000]
    for row in data["rows"]:
        for prefix in ("report", "traces", "parse"):
            assert row[f"{prefix}_cpu_s"] > 0 and row[f"{prefix}_peak_rss_mb"] > 0
        assert row["page_kb"] > 10 and isinstance(row["report_over_traces_cpu"], NUMBER)
    assert data["import"]["peak_rss_mb"] > 0
