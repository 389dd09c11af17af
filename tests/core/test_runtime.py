"""configure() and the lazy runtime: a configuration mistake never reaches the user's LLM call, and a failed
configure() leaves the running runtime exactly as it was."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter

import llmmetrics
from llmmetrics import ConfigError

runtime_module = importlib.import_module("llmmetrics.runtime")  # the package's `runtime` is the function

MESSAGES = [{"role": "user", "content": "hi"}]

#: A fresh process that never calls configure(): instruments a client, makes two calls, reports what it saw.
#: argv: base_url, how logging is set up (none / null-handler / handler), "clash" to pre-register a metric
#: named like llmmetrics' own, "configure" to call configure() twice afterwards.
LAZY_APP = textwrap.dedent("""
    import json, logging, sys
    import openai
    from prometheus_client import REGISTRY, Counter
    base_url, logging_setup, extra = sys.argv[1], sys.argv[2], sys.argv[3]
    seen = []
    if logging_setup == "null-handler":  # what a library on the way may do
        logging.getLogger("llmmetrics").addHandler(logging.NullHandler())
    elif logging_setup == "handler":
        class Keep(logging.Handler):
            def emit(self, record):
                seen.append([record.levelname, record.getMessage()])
        logging.getLogger().addHandler(Keep())
    if extra == "clash":
        Counter("llm_requests", "the application's own metric of that name")
    import llmmetrics
    client = llmmetrics.instrument(openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0))
    answers = [client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
               .choices[0].message.content for _ in range(2)]
    if extra == "configure":
        llmmetrics.configure(trace_file=None)
        llmmetrics.configure(trace_file=None)
    rt = llmmetrics.runtime()
    rt.flush(10)

    def total(family_owner, name, **labels):
        return sum(s.value for m in family_owner.collect() for s in m.samples
                   if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))

    print(json.dumps({
        "answers": answers, "logged": seen, "trace_file": rt.config.trace_file,
        "counted": total(rt.metrics.requests, "llm_requests_total"),
        "exposed": total(REGISTRY, "llm_requests_total"),
        "config_errors": total(rt.self_metrics.config_errors, "llmmetrics_config_errors_total", reason="invalid_value"),
        "unknown": total(rt.self_metrics.config_errors, "llmmetrics_config_errors_total", reason="unknown_variable"),
    }))
""")


def run_lazy_app(base_url: str, tmp_path: Path, env: dict[str, str], logging_setup: str = "none",
                 extra: str = "") -> tuple[dict[str, Any], list[str]]:
    """Run LAZY_APP in ``tmp_path`` with only ``env`` as LLMMETRICS_*; its report and its stderr lines."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LLMMETRICS_")}
    proc = subprocess.run([sys.executable, "-c", LAZY_APP, base_url, logging_setup, extra or "-"],
                          env={**clean, **env}, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr.splitlines()


def trace_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines() if b'"kind":"call"' in line]


class TestLazyPath:
    @pytest.mark.parametrize("logging_setup", ["none", "null-handler"])
    def test_a_bad_variable_is_reported_once_on_stderr_and_the_calls_are_measured(
            self, llm_server: Any, tmp_path: Path, logging_setup: str) -> None:
        """LLMMETRICS_SAMPLE_SUCCESS_RATIO=abc with no configure(): calls answer, are counted and traced with the
        default ratio; one error naming the variable reaches stderr, even past a library's NullHandler."""
        env = {"LLMMETRICS_SAMPLE_SUCCESS_RATIO": "abc", "LLMMETRICS_TRACE_FILE": str(tmp_path / "t.jsonl")}
        report, stderr = run_lazy_app(llm_server.base_url, tmp_path, env, logging_setup)
        assert len(report["answers"]) == 2 and all(report["answers"])
        assert report["counted"] == 2 and report["exposed"] == 2 and report["config_errors"] == 1
        assert stderr == ["llmmetrics: invalid configuration: LLMMETRICS_SAMPLE_SUCCESS_RATIO='abc' (field "
                          "sample_success_ratio): expected a number between 0 and 1; using the default (1.0) instead"]
        assert [r["sampled"] for r in trace_lines(tmp_path / "t.jsonl")] == ["ratio", "ratio"]

    def test_an_application_with_logging_gets_the_error_as_a_log_record(self, llm_server: Any, tmp_path: Path) -> None:
        """With a handler installed, the error is one ERROR record on the llmmetrics logger, not an extra stderr line."""
        report, stderr = run_lazy_app(llm_server.base_url, tmp_path, {"LLMMETRICS_CAPTURE_CONTENT": "maybe"}, "handler")
        assert report["counted"] == 2
        assert report["logged"] == [["ERROR", "llmmetrics: invalid configuration: LLMMETRICS_CAPTURE_CONTENT='maybe' "
                                     "(field capture_content): expected one of true/false/1/0/yes/no/on/off; using "
                                     "the default (True) instead"]]
        assert stderr == []

    def test_an_unusable_trace_file_falls_back_to_the_default_file(self, llm_server: Any, tmp_path: Path) -> None:
        """LLMMETRICS_TRACE_FILE under an existing file: the records go to the default file instead, and it is said."""
        (tmp_path / "plain").write_text("")
        report, stderr = run_lazy_app(llm_server.base_url, tmp_path,
                                      {"LLMMETRICS_TRACE_FILE": str(tmp_path / "plain" / "t.jsonl")})
        assert report["counted"] == 2 and report["trace_file"] == "llmmetrics-traces.jsonl"
        assert len(stderr) == 1 and "LLMMETRICS_TRACE_FILE=" in stderr[0] and "is not a directory" in stderr[0]
        assert len(trace_lines(tmp_path / "llmmetrics-traces.jsonl")) == 2

    def test_a_missing_price_file_runs_with_the_shipped_prices(self, llm_server: Any, tmp_path: Path) -> None:
        """LLMMETRICS_PRICE_FILE that does not exist: reported, and the calls are priced from the shipped table."""
        report, stderr = run_lazy_app(llm_server.base_url, tmp_path, {"LLMMETRICS_PRICE_FILE": "nope.json"})
        assert report["counted"] == 2 and len(stderr) == 1
        assert stderr[0].startswith("llmmetrics: invalid configuration: LLMMETRICS_PRICE_FILE='nope.json' (field "
                                    "price_file): expected a readable JSON price file")
        assert all(r["cost_usd"] for r in trace_lines(tmp_path / "llmmetrics-traces.jsonl"))

    def test_a_loki_sink_that_cannot_start_leaves_the_trace_file(self, llm_server: Any, tmp_path: Path) -> None:
        """A reserved Loki label refuses the Loki sink: the runtime starts without it and keeps the trace file."""
        report, stderr = run_lazy_app(llm_server.base_url, tmp_path, {
            "LLMMETRICS_LOKI_URL": "http://127.0.0.1:9", "LLMMETRICS_LOKI_LABELS": "level=debug"})
        assert report["counted"] == 2 and report["config_errors"] == 2
        assert "could not start with the trace file and the Loki sink" in stderr[0] and "'level'" in stderr[0]
        assert stderr[1] == "llmmetrics: invalid configuration: running with the trace file instead"
        assert len(trace_lines(tmp_path / "llmmetrics-traces.jsonl")) == 2

    def test_a_metric_name_taken_by_the_application_is_counted_not_exposed(self, llm_server: Any, tmp_path: Path) -> None:
        """The application registered its own llm_requests: calls still work and are counted, and it is said."""
        report, stderr = run_lazy_app(llm_server.base_url, tmp_path, {}, extra="clash")
        assert report["counted"] == 2 and report["exposed"] == 0
        assert len(stderr) == 1 and "already holds a collector" in stderr[0] and "not exposed" in stderr[0]

    def test_an_unknown_variable_is_reported_once_with_the_closest_name(self, llm_server: Any, tmp_path: Path) -> None:
        """LLMMETRICS_SAMPLE_RATE is a typo: one warning naming LLMMETRICS_SAMPLE_SUCCESS_RATIO, across the lazy
        runtime and two configure() calls."""
        report, stderr = run_lazy_app(llm_server.base_url, tmp_path, {"LLMMETRICS_SAMPLE_RATE": "0.1"}, extra="configure")
        assert stderr == ["llmmetrics: LLMMETRICS_SAMPLE_RATE is not an llmmetrics setting and is ignored: did you "
                          "mean LLMMETRICS_SAMPLE_SUCCESS_RATIO?"]
        assert report["answers"] and report["unknown"] == 0  # counted by the lazy runtime, replaced since


def test_a_script_that_never_flushes_still_writes_its_records_at_exit(llm_server: Any, tmp_path: Path) -> None:
    """The exit hook flushes: a script that makes a call and ends has its record in the trace file."""
    script = ("import sys, openai, llmmetrics\n"
              "client = llmmetrics.instrument(openai.OpenAI(base_url=sys.argv[1], api_key='sk-test', max_retries=0))\n"
              "client.chat.completions.create(model='gpt-4o-mini', messages=[{'role': 'user', 'content': 'hi'}])\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LLMMETRICS_")}
    subprocess.run([sys.executable, "-c", script, llm_server.base_url], cwd=tmp_path, env=clean, check=True,
                   timeout=120)
    assert len(trace_lines(tmp_path / "llmmetrics-traces.jsonl")) == 1


def test_a_runtime_that_cannot_be_built_at_all_stays_out_of_the_users_code(
        monkeypatch: pytest.MonkeyPatch, client: Any) -> None:
    """A defect that breaks every build (defaults, no sinks, no registry) reaches runtime()'s callers as the
    error it is, and their guards keep it there: the call answers, a `trace_run` block ends normally, and
    `flush()` reports that nothing was flushed."""
    class Broken:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("defect")

    monkeypatch.setattr(runtime_module, "_runtime", None)
    monkeypatch.setattr(runtime_module, "Runtime", Broken)
    with pytest.raises(RuntimeError, match="defect"):
        llmmetrics.runtime()
    with llmmetrics.trace_run("agent"):
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert reply.choices[0].message.content
    assert llmmetrics.flush(1) is False


def _calls(registry: CollectorRegistry) -> float:
    return sum(s.value for m in registry.collect() for s in m.samples if s.name == "llm_requests_total")


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("llmmetrics-")}


class TestConfigure:
    def test_a_failed_configure_changes_nothing_and_a_corrected_one_works(self, tmp_path: Path, client: Any) -> None:
        """After each bad configure() the previous runtime is still installed, registered, counting and writing;
        then a correct configure() replaces it in the same registry."""
        registry = CollectorRegistry()
        before = llmmetrics.configure(registry=registry, trace_file=str(tmp_path / "before.jsonl"), service="before")
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        (tmp_path / "plain").write_text("")
        threads = _threads()
        mistakes = [
            {"trace_file": str(tmp_path / "plain" / "t.jsonl")},
            {"price_file": str(tmp_path / "missing.json")},
            {"loki_url": "localhost:3100"},
            {"loki_url": "http://127.0.0.1:9", "loki_labels": {"level": "debug"}},
            {"sample_success_ratio": "abc"},
        ]
        for options in mistakes:
            with pytest.raises(ConfigError):
                llmmetrics.configure(registry=registry, service="after", **options)
            assert llmmetrics.runtime() is before and _threads() == threads
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert before.flush(10)
        assert _calls(registry) == 1 + len(mistakes)
        assert [r["service"] for r in trace_lines(tmp_path / "before.jsonl")] == ["before"] * (1 + len(mistakes))

        after = llmmetrics.configure(registry=registry, trace_file=str(tmp_path / "after.jsonl"), service="after")
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            assert after.flush(10)
            assert _calls(registry) == 1  # the new runtime's series replaced the old ones
            assert [r["service"] for r in trace_lines(tmp_path / "after.jsonl")] == ["after"]
        finally:
            after.close(5)

    def test_a_first_configure_that_fails_does_not_poison_the_process(
            self, tmp_path: Path, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        """With no runtime yet, a failed configure() leaves no metric behind: the next one and the calls work."""
        monkeypatch.setattr(runtime_module, "_runtime", None)
        registry = CollectorRegistry()
        with pytest.raises(ConfigError, match="loki_url='localhost:3100'"):
            llmmetrics.configure(registry=registry, trace_file=str(tmp_path / "t.jsonl"), loki_url="localhost:3100")
        assert list(registry.collect()) == []
        rt = llmmetrics.configure(registry=registry, trace_file=str(tmp_path / "t.jsonl"))
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            assert rt.flush(10) and _calls(registry) == 1
        finally:
            rt.close(5)

    def test_a_metric_name_taken_in_the_registry_is_a_config_error(self, tmp_path: Path) -> None:
        """A registry already holding someone else's llm_requests refuses configure(), and keeps that collector."""
        registry = CollectorRegistry()
        theirs = Counter("llm_requests", "someone else's", registry=registry)
        threads = _threads()
        with pytest.raises(ConfigError, match="already holds a collector named like one of llmmetrics' metrics"):
            llmmetrics.configure(registry=registry, trace_file=str(tmp_path / "t.jsonl"))
        assert [m.name for m in registry.collect()] == ["llm_requests"] and theirs._value.get() == 0
        assert _threads() == threads
