"""W3C trace context: with the real OpenTelemetry SDK (in-memory span exporter), a call made inside a recording
span — openai or anthropic, sync or async, inside a trace_run or not — carries that span's trace id in its
record and exemplars and the span as its parent; bind_context(traceparent=...) does the same without an SDK,
malformed headers are ignored and counted; and without OpenTelemetry nothing of it is imported."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

import llmmetrics
from llmmetrics.tracecontext import Parent, parse_traceparent

from tests.support.claude import request
from tests.support.llm import Traced

REPO = Path(__file__).resolve().parents[2]
MESSAGES = [{"role": "user", "content": "hi"}]
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer(exporter: InMemorySpanExporter) -> Iterator[Any]:
    """A real SDK tracer (not installed globally) whose finished spans land in ``exporter``."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("tests")
    provider.shutdown()


def _ids(span: Any) -> tuple[str, str]:
    context = span.get_span_context()
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def _exemplar_trace_ids(traced: Traced) -> set[str]:
    return {line.split('trace_id="')[1][:32] for line in traced.openmetrics().splitlines()
            if line.startswith("llm_request_duration_seconds_bucket") and 'trace_id="' in line}


def test_calls_inside_a_recording_span_join_its_trace(traced: Traced, tracer: Any, client: Any, claude: Any,
                                                      exporter: InMemorySpanExporter) -> None:
    """openai and anthropic calls (plain, streamed, the stream helper) made in a span: each record's trace_id
    is the span's trace id and its parent_span_id the span's id; the exemplars carry that trace id."""
    with tracer.start_as_current_span("handle-request") as span:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
        claude.messages.create(**request())
        with claude.messages.stream(**request()) as stream:
            stream.until_done()
    (finished,) = exporter.get_finished_spans()
    trace_id, span_id = _ids(finished)
    assert _ids(span) == (trace_id, span_id)
    records = traced.records()
    assert len(records) == 4
    assert {(r["trace_id"], r["parent_span_id"], r["parent_trace_id"]) for r in records} == {(trace_id, span_id, trace_id)}
    assert len({r["span_id"] for r in records}) == 4 and span_id not in {r["span_id"] for r in records}
    assert _exemplar_trace_ids(traced) == {trace_id}


def test_async_calls_join_the_span_current_in_their_task(traced: Traced, tracer: Any, async_client: Any,
                                                         async_claude: Any) -> None:
    """The span current in an asyncio task is the one its async calls join (contextvars follow the task)."""
    async def one(name: str) -> tuple[str, str]:
        with tracer.start_as_current_span(name) as span:
            await async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            async with async_claude.messages.stream(**request()) as stream:
                await stream.until_done()
            return _ids(span)

    async def run() -> list[tuple[str, str]]:
        return list(await asyncio.gather(one("a"), one("b")))
    spans = asyncio.run(run())
    joined = sorted((r["trace_id"], r["parent_span_id"]) for r in traced.records())
    assert joined == sorted(spans * 2) and spans[0][0] != spans[1][0]


def test_a_run_started_in_a_span_joins_its_trace_and_inner_spans_parent_their_calls(
        traced: Traced, tracer: Any, client: Any, claude: Any) -> None:
    """trace_run inside a span: the run takes the span's trace id and hangs under the span; its calls hang under
    the run, except one made inside a span opened within the run, which hangs under that span."""
    with tracer.start_as_current_span("handle-request") as outer:
        with llmmetrics.trace_run("agent") as run:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            with tracer.start_as_current_span("tool-step") as inner:
                claude.messages.create(**request())
    trace_id, outer_id = _ids(outer)
    assert run.trace_id == trace_id and run.parent_span_id == outer_id
    (run_record,) = traced.records("run")
    assert (run_record["trace_id"], run_record["parent_span_id"]) == (trace_id, outer_id)
    first, second = traced.records()
    assert (first["trace_id"], first["parent_span_id"], first["run_name"]) == (trace_id, run.span_id, "agent")
    assert (second["trace_id"], second["parent_span_id"], second["run_name"]) == (trace_id, _ids(inner)[1], "agent")
    assert run_record["step_count"] == 2


def test_a_span_that_is_not_recording_is_not_joined(traced: Traced, client: Any) -> None:
    """A sampled-out span (never exported, unknown to Tempo) leaves the call in a trace of its own."""
    tracer = TracerProvider(sampler=ALWAYS_OFF).get_tracer("tests")
    with tracer.start_as_current_span("dropped") as span:
        assert not span.is_recording()
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    record = traced.only_record()
    assert record["trace_id"] != _ids(span)[0] and record["parent_span_id"] is None


def test_bound_traceparent_is_joined_by_calls_and_runs(traced: Traced, client: Any, claude: Any) -> None:
    """bind_context(traceparent=...) without an SDK: calls and runs inside join the incoming trace."""
    parent = parse_traceparent(TRACEPARENT)
    assert parent == Parent("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
    with llmmetrics.bind_context(traceparent=f"  {TRACEPARENT} ", user_id="u-1"):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        with llmmetrics.trace_run("agent") as run:
            claude.messages.create(**request())
    direct, in_run = traced.records()
    assert (direct["trace_id"], direct["parent_span_id"]) == parent
    assert run.trace_id == parent.trace_id and run.parent_span_id == parent.span_id
    assert (in_run["trace_id"], in_run["parent_span_id"]) == (parent.trace_id, run.span_id)
    assert direct["user_id"] == "u-1" and direct["context"] == {"traceparent": TRACEPARENT}
    assert _exemplar_trace_ids(traced) == {parent.trace_id}
    assert not traced.value("llmmetrics_traceparent_rejected_total")


def test_a_recording_span_wins_over_a_bound_traceparent(traced: Traced, tracer: Any, client: Any) -> None:
    """With both, the OpenTelemetry span (the application's own trace) is the parent."""
    with llmmetrics.bind_context(traceparent=TRACEPARENT), tracer.start_as_current_span("s") as span:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    record = traced.only_record()
    assert (record["trace_id"], record["parent_span_id"]) == _ids(span)


MALFORMED = [
    "", "garbage", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  # fields missing
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",  # upper case
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero parent id
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff
    TRACEPARENT + "-extra",  # version 00 has exactly four fields
    "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # 31 hex
    12345, b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
]


def test_malformed_traceparents_are_ignored_and_counted_never_raised(traced: Traced, client: Any) -> None:
    """Each malformed value is dropped (the call keeps a trace of its own) and counted once; None (no header)
    is dropped without being counted."""
    for header in MALFORMED:
        assert parse_traceparent(header) is None
        with llmmetrics.bind_context(traceparent=header) as bound:
            assert "traceparent" not in bound
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    with llmmetrics.bind_context(traceparent=None):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    records = traced.records()
    assert len(records) == len(MALFORMED) + 1 and all(r["parent_span_id"] is None for r in records)
    assert traced.value("llmmetrics_traceparent_rejected_total") == len(MALFORMED)


def test_future_traceparent_versions_are_read_by_their_first_four_fields() -> None:
    """A later version may append fields: its trace and parent ids are still adopted (W3C forward compatibility)."""
    assert parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes") == Parent(
        "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")


def test_without_opentelemetry_nothing_is_imported_and_calls_are_traced(tmp_path: Path) -> None:
    """An openai application that never imports OpenTelemetry: a traced call imports no opentelemetry module."""
    code = f"""
import sys
import openai, llmmetrics
from prometheus_client import CollectorRegistry
from llmmetrics.fake import FakeLLMServer
rt = llmmetrics.configure(registry=CollectorRegistry(), trace_file={str(tmp_path / "t.jsonl")!r})
with FakeLLMServer(seed=1) as server:
    client = llmmetrics.instrument(openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0))
    client.chat.completions.create(model="gpt-4o-mini", messages=[{{"role": "user", "content": "hi"}}])
    with llmmetrics.trace_run("agent"):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{{"role": "user", "content": "hi"}}])
assert rt.flush(10)
print(sorted(n for n in sys.modules if n.split(".")[0] == "opentelemetry"))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]"
    assert len((tmp_path / "t.jsonl").read_text().splitlines()) == 3
