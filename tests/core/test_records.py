"""The record pipeline: sampling, secrets, redaction hooks, inline media, size bounds and values JSON cannot
encode — each gives a correct record and never changes what the user's call returns or raises."""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path
from typing import Any

import openai
import pydantic
import pytest
from prometheus_client import CollectorRegistry

import llmmetrics

from tests.support.llm import API_KEY, Traced, make_client

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def configure(tmp_path: Path, llm_server: Any) -> Any:
    """configure(**options) → (Traced, instrumented client); closes the runtime afterwards."""
    made: list[Any] = []

    def make(**options: Any) -> tuple[Traced, Any]:
        registry = CollectorRegistry()
        path = tmp_path / f"traces-{len(made)}.jsonl"
        rt = llmmetrics.configure(registry=registry, trace_file=str(path), **options)
        made.append(rt)
        return Traced(registry, path, rt), llmmetrics.instrument(make_client(llm_server))
    yield make
    for rt in made:
        rt.close(5)


def test_sampling_thins_content_per_trace_but_keeps_errors_and_numbers(configure: Any) -> None:
    """At 0% success sampling, successes go out compact (numbers kept, no content); errors stay full."""
    traced, client = configure(sample_success_ratio=0.0)
    with llmmetrics.trace_run("agent"):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                           extra_headers={"x-fake-fault": "server_error"})
    ok, failed = traced.records()
    assert ok["sampled"] == "out" and ok["messages"] is None and ok["output"] is None and ok["kwargs"] is None
    assert ok["input_tokens"] > 0 and ok["cost_usd"] > 0 and ok["latency_ms"] > 0
    assert failed["sampled"] == "error" and failed["messages"] == MESSAGES
    assert traced.value("llmmetrics_records_sampled_out_total") == 1
    assert traced.value("llm_requests_total", provider="openai_compatible", model="gpt-4o-mini", operation="chat",
                        status="ok") == 1  # metrics are never sampled


def test_sampling_decision_is_the_same_for_every_call_of_a_run(configure: Any) -> None:
    """A run is kept or thinned as a whole: the decision hashes the trace id."""
    traced, client = configure(sample_success_ratio=0.5)
    for _ in range(12):
        with llmmetrics.trace_run("agent"):
            for _ in range(3):
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    by_trace: dict[str, set[str]] = {}
    for record in traced.records():
        by_trace.setdefault(record["trace_id"], set()).add(record["sampled"])
    assert all(len(decisions) == 1 for decisions in by_trace.values())
    assert {d for ds in by_trace.values() for d in ds} <= {"ratio", "out"}


def test_slow_calls_are_always_kept_in_full(configure: Any) -> None:
    """A call slower than slow_call_seconds keeps its content even when successes are sampled out."""
    traced, client = configure(sample_success_ratio=0.0, slow_call_seconds=0.0001, latency_slo_seconds=0.0001)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    record = traced.only_record()
    assert record["sampled"] == "slow" and record["messages"] == MESSAGES


@pytest.mark.parametrize("ratio", [1.0, 0.5])
def test_the_reason_a_record_was_kept_is_recorded_at_every_ratio(configure: Any, ratio: float) -> None:
    """At the default ratio 1.0 too, a slow call says `slow` and a failed one `error`, so `sampled="slow"`
    finds the slow calls; only the rest say `ratio`."""
    traced, client = configure(sample_success_ratio=ratio, slow_call_seconds=0.0001, latency_slo_seconds=0.0001)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                       extra_headers={"x-fake-fault": "server_error"})
    assert [r["sampled"] for r in traced.records()] == ["slow", "error"]
    fast, _ = configure(sample_success_ratio=1.0)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert fast.only_record()["sampled"] == "ratio"


def test_api_keys_and_auth_headers_never_reach_a_record(configure: Any) -> None:
    """The client's key, Authorization headers and key-shaped strings in prompts are scrubbed."""
    traced, client = configure()
    secret_prompt = [{"role": "user", "content": f"my key is {API_KEY} and token Bearer abcdefghijklmnopqrstuvwxyz012345"}]
    client.chat.completions.create(model="gpt-4o-mini", messages=secret_prompt,
                                   extra_headers={"Authorization": "Bearer secret-token-value-123456789",
                                                  "X-Team": "search"})
    raw = traced.path.read_text()
    assert API_KEY not in raw and "abcdefghijklmnopqrstuvwxyz012345" not in raw
    assert "secret-token-value-123456789" not in raw
    record = traced.only_record()
    assert record["kwargs"]["extra_headers"] == {"Authorization": "[REDACTED]", "X-Team": "search"}
    assert record["messages"][0]["content"] == "my key is [REDACTED] and token Bearer [REDACTED]"


def test_user_redaction_hook_rewrites_content(configure: Any) -> None:
    """A redaction callable sees the record and can rewrite what is kept."""
    def hide_emails(record: dict[str, Any]) -> dict[str, Any]:
        if record.get("messages"):
            record["messages"] = [{**m, "content": m["content"].replace("ann@example.com", "<email>")}
                                  for m in record["messages"]]
        return record
    traced, client = configure(redact=hide_emails)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "mail ann@example.com"}])
    assert traced.only_record()["messages"][0]["content"] == "mail <email>"


def test_failing_redaction_hook_drops_content_not_the_record(configure: Any) -> None:
    """A hook that raises never leaks content and never breaks the call: the record goes out without content."""
    def broken(record: dict[str, Any]) -> dict[str, Any]:
        raise ValueError("oops")
    traced, client = configure(redact=broken)
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert reply.choices
    record = traced.only_record()
    assert record["messages"] is None and record["output"] is None and record["input_tokens"] > 0
    assert traced.value("llmmetrics_instrumentation_errors_total", stage="redact") == 1


def test_hook_returning_none_drops_the_record_and_counts_it(configure: Any) -> None:
    """A hook may drop a record on purpose; the drop is counted, not silent."""
    traced, client = configure(redact=lambda record: None)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert traced.records() == []
    assert traced.value("llmmetrics_records_dropped_total", sink="all", reason="redacted") == 1


def test_inline_images_are_replaced_by_a_placeholder(configure: Any) -> None:
    """A base64 image in a message becomes a short placeholder; the user's message is not modified."""
    traced, client = configure()
    image = "data:image/png;base64," + base64.b64encode(b"\x89PNG" + b"\0" * 30000).decode()
    message = {"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                           {"type": "image_url", "image_url": {"url": image}}]}
    client.chat.completions.create(model="gpt-4o-mini", messages=[message])
    assert message["content"][1]["image_url"]["url"] == image
    part = traced.only_record()["messages"][0]["content"][1]
    assert part["image_url"]["url"] == f"data:image/png;base64,<{len(image) - 22} base64 chars omitted>"


def test_five_megabyte_prompt_is_bounded_and_says_so(configure: Any) -> None:
    """A 5 MB prompt yields a record under the size limit, marked truncated with the original sizes."""
    traced, client = configure()
    huge = [{"role": "user", "content": "x" * 5_000_000}]
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=huge)
    record = traced.only_record()
    assert len(traced.path.read_bytes().splitlines()[0]) <= 250_000
    assert record["truncated"] is True and record["original_sizes"]["messages"] > 5_000_000
    assert record["input_tokens"] == reply.usage.prompt_tokens
    assert traced.value("llmmetrics_records_truncated_total") == 1


class Weather(pydantic.BaseModel):
    city: str


@dataclasses.dataclass
class Opaque:
    value: int


class Thing:
    def __repr__(self) -> str:
        return "<Thing>"


def test_values_json_cannot_encode_are_described_not_raised(configure: Any, llm_server: Any) -> None:
    """Bytes, functions, pydantic models and odd objects in kwargs: the call raises exactly what the bare client
    raises (it cannot send them), and the record describes them instead of failing."""
    traced, client = configure()
    odd = {"blob": b"\x00\x01", "schema": Weather(city="Oslo"), "fn": len, "data": Opaque(3), "big": 2**80,
           "thing": Thing()}
    errors = []
    for c in (make_client(llm_server), client):
        with pytest.raises(TypeError) as caught:
            c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, extra_body=odd)
        errors.append((type(caught.value), str(caught.value)))
    assert errors[0] == errors[1]
    record = traced.only_record()
    body = record["kwargs"]["extra_body"]
    assert record["status"] == "error" and record["error"]["type"] == "TypeError"
    assert body["blob"] == "<2 bytes>" and body["schema"] == {"city": "Oslo"}
    assert body["fn"] == "<callable len>" and body["data"] == {"value": 3} and body["thing"] == "<Thing>"
    assert str(2**80) in str(body["big"])


def test_sendable_but_unusual_kwargs_are_recorded(configure: Any) -> None:
    """Tuples and nested containers the client can send are recorded as JSON arrays and objects."""
    traced, client = configure()
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, metadata={"n": "1"},
                                   extra_body={"nested": {"t": (1, 2)}})
    body = traced.only_record()["kwargs"]
    assert body["metadata"] == {"n": "1"} and body["extra_body"]["nested"] == {"t": [1, 2]}


def test_capture_content_off_records_numbers_only(configure: Any) -> None:
    """capture_content=False keeps prompts and outputs out of every record."""
    traced, client = configure(capture_content=False)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    record = traced.only_record()
    assert record["messages"] is None and record["output"] is None and record["input_tokens"] > 0
