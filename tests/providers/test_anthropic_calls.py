"""Claude's Messages API through the real ``anthropic`` client over a real socket to the fake server: create()
plain and streamed and the messages.stream() helper, sync and async, each outcome's metrics and record
asserted exactly — the core acceptance scenarios of tests/core/test_calls.py, for Anthropic."""

from __future__ import annotations

import json
import secrets
from typing import Any

import anthropic
import orjson
import pytest

import llmmetrics
from llmmetrics.fake import FakeLLMServer
from llmmetrics.pricing import PriceTable

from tests.support.claude import HOWS, MESSAGES, call, text_seen, usage_seen
from tests.support.fake import CLAUDE, CLAUDE_WEATHER_TOOL, claude_client
from tests.support.llm import Traced

PRICES = PriceTable.load()
LABELS = {"provider": "anthropic", "model": CLAUDE, "operation": "chat"}
ERRORS = {
    "rate_limit": (anthropic.RateLimitError, 429),
    "server_error": (anthropic.InternalServerError, 500),
    "overloaded": (anthropic.OverloadedError, 529),
    "bad_request": (anthropic.BadRequestError, 400),
}
SYNC_ASYNC = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])


def _input_of(usage: dict[str, Any]) -> int:
    return usage["input_tokens"] + usage["cache_read_input_tokens"] + usage["cache_creation_input_tokens"]


@SYNC_ASYNC
@pytest.mark.parametrize("how", HOWS)
def test_successful_call_is_measured_and_recorded_exactly(traced: Traced, claudes: dict[bool, Any], how: str,
                                                            is_async: bool) -> None:
    """Every input token (cache reads and writes too) and the output are counted and billed; the record
    carries the text, stop reason, request id and, for streams, TTFT and time per chunk; the exemplar is the
    record's trace id."""
    seen = call(claudes[is_async], how, is_async)
    usage = usage_seen(seen)
    record = traced.only_record()
    input_tokens, output_tokens = _input_of(usage), usage["output_tokens"]
    assert input_tokens > 0 and output_tokens > 1
    assert record["input_tokens"] == input_tokens and record["output_tokens"] == output_tokens
    assert record["cached_input_tokens"] == 0 and record["cache_write_tokens"] == 0
    assert record["total_tokens"] == input_tokens + output_tokens
    expected_cost = PRICES.lookup(CLAUDE).cost(input_tokens, output_tokens, 0)  # type: ignore[union-attr]
    assert record["cost_usd"] == pytest.approx(expected_cost, rel=1e-12)
    assert record["provider"] == "anthropic" and record["operation"] == "chat" and record["model"] == CLAUDE
    assert record["response_model"] == "claude-haiku-4-5-20251001"
    assert record["status"] == "success" and record["error"] is None and record["stream"] is (how != "create")
    assert record["output"] == text_seen(seen) and record["finish_reason"] == "end_turn"
    assert record["messages"] == MESSAGES and record["kwargs"] == {"max_tokens": 256}
    assert record["provider_request_id"].startswith("req_011C")
    streamed = how != "create"
    assert (record["ttft_ms"] is not None) is streamed and (record["time_per_chunk_ms"] is not None) is streamed
    if streamed:
        chunks = sum(1 for e in seen.events if e.type == "content_block_delta")
        assert chunks > 1
        assert record["time_per_chunk_ms"] == pytest.approx(
            (record["latency_ms"] - record["ttft_ms"]) / (chunks - 1), rel=1e-9)

    assert traced.value("llm_requests_total", **LABELS, status="ok") == 1
    assert traced.value("llm_tokens_total", **LABELS, token_type="input") == input_tokens
    assert traced.value("llm_tokens_total", **LABELS, token_type="output") == output_tokens
    assert traced.value("llm_tokens_total", **LABELS, token_type="cache_write") == 0
    assert traced.value("llm_cost_usd_total", **LABELS) == pytest.approx(expected_cost, rel=1e-12)
    assert traced.value("llm_request_duration_seconds_sum", **LABELS, status="ok") == pytest.approx(
        record["latency_ms"] / 1000, rel=1e-9)
    assert traced.value("llm_time_to_first_token_seconds_count", **LABELS) == (1 if streamed else 0)
    assert traced.value("llm_time_per_output_chunk_seconds_count", **LABELS) == (1 if streamed else 0)
    if streamed:
        assert traced.value("llm_time_per_output_chunk_seconds_sum", **LABELS) == pytest.approx(
            record["time_per_chunk_ms"] / 1000, rel=1e-9)
    assert traced.value("llm_in_flight_requests", provider="anthropic", model=CLAUDE) == 0
    assert f'# {{span_id="{record["span_id"]}",trace_id="{record["trace_id"]}"}}' in traced.openmetrics()


@SYNC_ASYNC
@pytest.mark.parametrize("fault", sorted(ERRORS))
@pytest.mark.parametrize("how", HOWS)
def test_api_error_is_counted_by_class_and_reraised_unchanged(traced: Traced, claudes: dict[bool, Any], how: str,
                                                               fault: str, is_async: bool) -> None:
    """RateLimitError, InternalServerError, OverloadedError (529) and BadRequestError reach the user as the
    SDK raises them, and are counted and recorded under that class with the status and request id."""
    error_class, status = ERRORS[fault]
    with pytest.raises(error_class) as caught:
        call(claudes[is_async], how, is_async, fault)
    assert type(caught.value) is error_class
    record = traced.only_record()
    assert record["status"] == "error" and record["sampled"] == "error"
    assert record["error"] == {"type": error_class.__name__, "message": str(caught.value), "status_code": status}
    assert record["provider_request_id"] == caught.value.request_id and record["cost_usd"] is None
    assert traced.value("llm_errors_total", **LABELS, error_type=error_class.__name__) == 1
    assert traced.value("llm_requests_total", **LABELS, status="error") == 1
    assert traced.value("llm_unpriced_requests_total", provider="anthropic", model=CLAUDE) == 0
    assert traced.value("llm_in_flight_requests", provider="anthropic", model=CLAUDE) == 0


@SYNC_ASYNC
def test_client_timeout_is_recorded_as_api_timeout_error(traced: Traced, llm_server: FakeLLMServer,
                                                         is_async: bool) -> None:
    """A call that times out on the client raises APITimeoutError as usual and is recorded as one."""
    client = llmmetrics.instrument(claude_client(llm_server, is_async=is_async, timeout=0.3))
    with pytest.raises(anthropic.APITimeoutError):
        call(client, "create", is_async, "timeout")
    record = traced.only_record()
    assert record["error"]["type"] == "APITimeoutError" and record["latency_ms"] >= 300
    assert traced.value("llm_errors_total", **LABELS, error_type="APITimeoutError") == 1


@pytest.mark.parametrize("how", HOWS)
def test_invalid_json_is_recorded_and_raised_unchanged(traced: Traced, claude: Any, how: str) -> None:
    """A body (or stream event) cut off raises the client's own JSONDecodeError, recorded as that."""
    with pytest.raises(json.JSONDecodeError):
        call(claude, how, False, "invalid_json")
    assert traced.only_record()["error"]["type"] == "JSONDecodeError"
    assert traced.value("llm_errors_total", **LABELS, error_type="JSONDecodeError") == 1


@pytest.mark.parametrize("how", ["create", "stream"])
def test_missing_usage_gives_null_cost_and_counts_unpriced(traced: Traced, claude: Any, how: str) -> None:
    """Without usage (a message's, or message_start's and message_delta's) tokens and cost are null, never 0."""
    call(claude, how, False, "missing_usage")
    record = traced.only_record()
    assert record["status"] == "success" and record["input_tokens"] is None and record["cost_usd"] is None
    assert traced.value("llm_unpriced_requests_total", provider="anthropic", model=CLAUDE) == 1
    assert traced.value("llm_tokens_total", **LABELS, token_type="input") == 0


def test_unknown_model_has_null_cost_and_is_counted_unpriced(traced: Traced, claude: Any) -> None:
    """A Claude model missing from the price table: tokens recorded, cost_usd null, counted as unpriced."""
    reply = claude.messages.create(model="claude-unreleased-9", max_tokens=64, messages=MESSAGES)
    record = traced.only_record()
    assert record["input_tokens"] == reply.usage.input_tokens and record["cost_usd"] is None
    assert traced.value("llm_unpriced_requests_total", provider="anthropic", model="claude-unreleased-9") == 1


@pytest.mark.parametrize("ttl", ["5m", "1h"])
@pytest.mark.parametrize("how", HOWS)
def test_cache_reads_and_writes_are_input_billed_at_their_own_rates(traced: Traced, claude: Any, how: str,
                                                                    ttl: str) -> None:
    """A cached system prompt: the first call writes the cache (cache_write, at the 5-minute or 1-hour write
    rate), the second reads it (cached_input, at the read rate); both count as input."""
    system = [{"type": "text", "text": f"{secrets.token_hex(8)} policy. " + "Refunds take five days. " * 300,
               "cache_control": {"type": "ephemeral", "ttl": ttl}}]
    write, read = (usage_seen(call(claude, how, False, system=system)) for _ in range(2))
    assert write["cache_creation_input_tokens"] > 1024 and write["cache_read_input_tokens"] == 0
    assert read["cache_read_input_tokens"] == write["cache_creation_input_tokens"]
    first, second = traced.records()
    price = PRICES.lookup(CLAUDE)
    assert price is not None and price.cache_write == 1.25e-6 and price.cache_write_1h == 2e-6
    write_rate = price.cache_write_1h if ttl == "1h" else price.cache_write
    assert first["input_tokens"] == _input_of(write) and first["cache_write_tokens"] == write["cache_creation_input_tokens"]
    assert first["cost_usd"] == pytest.approx(write["input_tokens"] * 1e-6 + write["cache_creation_input_tokens"]
                                              * write_rate + write["output_tokens"] * 5e-6, rel=1e-12)
    assert second["cached_input_tokens"] == read["cache_read_input_tokens"] and second["cache_write_tokens"] == 0
    assert second["cost_usd"] == pytest.approx(read["input_tokens"] * 1e-6 + read["cache_read_input_tokens"] * 1e-7
                                               + read["output_tokens"] * 5e-6, rel=1e-12)
    assert traced.value("llm_tokens_total", **LABELS, token_type="cache_write") == write["cache_creation_input_tokens"]
    assert traced.value("llm_tokens_total", **LABELS, token_type="cached_input") == read["cache_read_input_tokens"]
    assert traced.value("llm_tokens_total", **LABELS, token_type="input") == _input_of(write) + _input_of(read)


@pytest.mark.parametrize("how", HOWS)
def test_thinking_tokens_are_reasoning_billed_as_output(traced: Traced, claude: Any, how: str) -> None:
    """With extended thinking, the thinking-token count is the record's reasoning (part of output)."""
    seen = call(claude, how, False, max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024})
    usage = usage_seen(seen)
    thinking = usage["output_tokens_details"]["thinking_tokens"]
    record = traced.only_record()
    assert thinking > 0 and record["reasoning_tokens"] == thinking and record["output_tokens"] == usage["output_tokens"]
    assert traced.value("llm_tokens_total", **LABELS, token_type="reasoning") == thinking
    assert record["cost_usd"] == pytest.approx((_input_of(usage) * 1.0 + usage["output_tokens"] * 5.0) / 1e6, rel=1e-12)


@pytest.mark.parametrize("how", HOWS)
def test_tool_use_blocks_are_the_records_tool_calls(traced: Traced, claude: Any, how: str) -> None:
    """tool_use blocks become tool_calls {id, name, arguments}: arguments the JSON of the block's input (streams:
    the input_json deltas as sent), and the stop reason tool_use."""
    seen = call(claude, how, False, tools=[CLAUDE_WEATHER_TOOL])
    if seen.message is not None:
        blocks = [b for b in seen.message.content if b.type == "tool_use"]
        expected = [{"id": b.id, "name": b.name, "input": b.input} for b in blocks]
    else:
        start = next(e for e in seen.events if e.type == "content_block_start" and e.content_block.type == "tool_use")
        sent = "".join(e.delta.partial_json for e in seen.events
                       if e.type == "content_block_delta" and e.delta.type == "input_json_delta")
        expected = [{"id": start.content_block.id, "name": start.content_block.name, "input": orjson.loads(sent)}]
    record = traced.only_record()
    assert expected and expected[0]["name"] == "get_weather"
    assert [{"id": t["id"], "name": t["name"], "input": orjson.loads(t["arguments"])} for t in record["tool_calls"]] \
        == expected
    assert record["finish_reason"] == "tool_use"


def test_agent_run_of_claude_and_gpt_calls_is_one_trace(traced: Traced, claude: Any, client: Any) -> None:
    """A run mixing Claude and GPT steps (one failing) is one trace: every call under the run's span, the run
    record totalling tokens, cache writes and cost over both providers."""
    with llmmetrics.trace_run("support-agent") as run:
        claude.messages.create(model=CLAUDE, max_tokens=64, messages=MESSAGES)
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        with pytest.raises(anthropic.OverloadedError):
            claude.messages.create(model=CLAUDE, max_tokens=64, messages=MESSAGES,
                                   extra_headers={"x-fake-fault": "overloaded"})
    calls = traced.records()
    (record,) = traced.records("run")
    assert [c["provider"] for c in calls] == ["anthropic", "openai_compatible", "anthropic"]
    assert {c["trace_id"] for c in calls} == {run.trace_id} and {c["parent_span_id"] for c in calls} == {run.span_id}
    assert record["step_count"] == 3 and record["failed_steps"] == 1 and record["error"]["type"] == "OverloadedError"
    assert record["input_tokens"] == sum(c["input_tokens"] or 0 for c in calls)
    assert record["cache_write_tokens"] == 0
    assert record["cost_usd"] == pytest.approx(sum(c["cost_usd"] for c in calls[:2]), rel=1e-12)


@pytest.mark.parametrize("how", HOWS)
def test_bedrock_and_vertex_clients_get_their_provider(traced: Traced, llm_server: FakeLLMServer, how: str) -> None:
    """AnthropicBedrock is provider "bedrock" (its dated model id priced as the base model), AnthropicVertex
    "vertex"; both are measured like the first-party client."""
    bedrock = llmmetrics.instrument(anthropic.AnthropicBedrock(
        aws_region="us-east-1", aws_access_key="AKIAFAKEFAKEFAKEFAKE", aws_secret_key="fake-secret",
        base_url=llm_server.url, max_retries=0, timeout=10))
    vertex = llmmetrics.instrument(anthropic.AnthropicVertex(
        base_url=llm_server.base_url, region="us-east5", project_id="p", access_token="t", max_retries=0, timeout=10))
    models = {"bedrock": "us.anthropic.claude-haiku-4-5-20251001-v1:0", "vertex": "claude-haiku-4-5@20251001"}
    seen = {"bedrock": call(bedrock, how, False, model=models["bedrock"]),
            "vertex": call(vertex, how, False, model=models["vertex"])}
    records = {r["provider"]: r for r in traced.records()}
    assert set(records) == {"bedrock", "vertex"}
    for provider, record in records.items():
        usage = usage_seen(seen[provider])
        assert record["status"] == "success" and record["input_tokens"] == _input_of(usage)
        assert record["cost_usd"] == pytest.approx((_input_of(usage) + usage["output_tokens"] * 5) / 1e6, rel=1e-12)
        assert traced.value("llm_requests_total", provider=provider, model=models[provider].lower(), operation="chat",
                            status="ok") == 1
    if how != "create":  # a stream's x-amzn-requestid header (a parsed Bedrock message does not carry it)
        assert len(records["bedrock"]["provider_request_id"]) == 36
