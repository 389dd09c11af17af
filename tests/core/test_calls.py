"""Every traced operation × sync/async × stream/non-stream × outcome, through the real openai client over a
real socket to the fake LLM server: metric values and trace fields asserted exactly."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest

from llmmetrics.pricing import PriceTable

from tests.support.llm import Traced

PRICES = PriceTable.load()
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where is order #1234?"}]
MODELS = {"chat": "gpt-4o-mini", "responses": "gpt-4.1", "embeddings": "text-embedding-3-small"}
CASES = [("chat", False), ("chat", True), ("responses", False), ("responses", True), ("embeddings", False)]
ERRORS = {
    "rate_limit": (openai.RateLimitError, 429),
    "server_error": (openai.InternalServerError, 500),
    "bad_request": (openai.BadRequestError, 400),
}


def _request(operation: str, stream: bool, fault: str | None) -> tuple[Any, dict[str, Any]]:
    kwargs: dict[str, Any] = {"model": MODELS[operation]}
    if operation == "chat":
        kwargs["messages"] = MESSAGES
    elif operation == "responses":
        kwargs["input"] = "Where is order #1234?"
    else:
        kwargs["input"] = ["order #1234", "returns policy"]
    if stream:
        kwargs["stream"] = True
    if fault:
        kwargs["extra_headers"] = {"x-fake-fault": fault}
    return operation, kwargs


def _resource(client: Any, operation: str) -> Any:
    return {"chat": lambda: client.chat.completions, "responses": lambda: client.responses,
            "embeddings": lambda: client.embeddings}[operation]()


def call_sync(client: Any, operation: str, stream: bool, fault: str | None = None) -> tuple[Any, list[Any]]:
    op, kwargs = _request(operation, stream, fault)
    result = _resource(client, op).create(**kwargs)
    return result, (list(result) if stream else [])


def call_async(client: Any, operation: str, stream: bool, fault: str | None = None) -> tuple[Any, list[Any]]:
    async def run() -> tuple[Any, list[Any]]:
        op, kwargs = _request(operation, stream, fault)
        result = await _resource(client, op).create(**kwargs)
        items = [item async for item in result] if stream else []
        return result, items
    return asyncio.run(run())


def _usage_of(operation: str, result: Any, items: list[Any]) -> tuple[int, int | None, int, int]:
    """(input, output, cached, reasoning) as the API reported them to the user."""
    if operation == "embeddings":
        return result.usage.prompt_tokens, None, 0, 0
    if operation == "responses":
        # as a dict: openai 1.66 has no model for input_tokens_details and keeps it as the plain dict it got
        usage = (result.usage if not items else items[-1].response.usage).model_dump()
        return (usage["input_tokens"], usage["output_tokens"], usage["input_tokens_details"]["cached_tokens"],
                usage["output_tokens_details"]["reasoning_tokens"])
    usage = result.usage
    return (usage.prompt_tokens, usage.completion_tokens, usage.prompt_tokens_details.cached_tokens,
            usage.completion_tokens_details.reasoning_tokens)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("operation,stream", CASES, ids=[f"{o}-{'stream' if s else 'plain'}" for o, s in CASES])
def test_successful_call_is_measured_and_recorded_exactly(traced: Traced, client: Any, async_client: Any,
                                                            operation: str, stream: bool, is_async: bool) -> None:
    """A successful call yields exact token/cost metrics, a duration with an exemplar, and a full record."""
    result, items = (call_async(async_client, operation, stream) if is_async else call_sync(client, operation, stream))
    record = traced.only_record()
    labels = {"provider": "openai_compatible", "model": MODELS[operation], "operation": operation}

    if stream and operation == "chat":  # usage was not asked for: llmmetrics asked, then withheld that chunk
        assert all(chunk.choices for chunk in items)
        assert all(chunk.usage is None for chunk in items)
        input_tokens, output_tokens = record["input_tokens"], record["output_tokens"]
        assert input_tokens > 0 and output_tokens > 0
        assert record["output"] == "".join(c.choices[0].delta.content or "" for c in items)
        cached, reasoning = record["cached_input_tokens"], record["reasoning_tokens"]
    else:
        input_tokens, output_tokens, cached, reasoning = _usage_of(operation, result, items)
        assert record["input_tokens"] == input_tokens
        assert record["output_tokens"] == output_tokens
    price = PRICES.lookup(MODELS[operation])
    assert price is not None
    expected_cost = price.cost(input_tokens, output_tokens or 0, cached or 0)
    assert record["cost_usd"] == pytest.approx(expected_cost, rel=1e-12)
    assert record["status"] == "success" and record["error"] is None
    assert record["operation"] == operation and record["model"] == MODELS[operation]
    assert record["stream"] is stream
    assert record["service"] == "test-svc" and record["env"] == "test"
    assert record["provider_request_id"] and record["provider_request_id"].startswith("req_")
    assert record["sampled"] == "ratio" and record["truncated"] is False
    assert (record["ttft_ms"] is not None) is stream
    assert (record["time_per_chunk_ms"] is not None) is stream  # chat: its text chunks; responses: text deltas
    if stream:
        assert 0 < record["time_per_chunk_ms"] < record["latency_ms"] - record["ttft_ms"]
    assert len(record["trace_id"]) == 32 and len(record["span_id"]) == 16 and len(record["call_id"]) == 32
    if operation == "chat" and not stream:
        assert record["output"] == result.choices[0].message.content
        assert record["finish_reason"] == result.choices[0].finish_reason
        assert record["messages"] == MESSAGES

    assert traced.value("llm_requests_total", **labels, status="ok") == 1
    assert traced.value("llm_requests_total", **labels, status="error") == 0
    assert traced.value("llm_tokens_total", **labels, token_type="input") == input_tokens
    if output_tokens is not None:
        assert traced.value("llm_tokens_total", **labels, token_type="output") == output_tokens
        assert traced.value("llm_request_tokens_count", **labels, token_type="output") == 1
    assert traced.value("llm_cost_usd_total", **labels) == pytest.approx(expected_cost, rel=1e-12)
    assert traced.value("llm_request_duration_seconds_count", **labels, status="ok") == 1
    assert traced.value("llm_request_duration_seconds_sum", **labels, status="ok") == pytest.approx(
        record["latency_ms"] / 1000, rel=1e-9)
    assert traced.value("llm_time_to_first_token_seconds_count", **labels) == (1 if stream else 0)
    assert traced.value("llm_time_per_output_chunk_seconds_count", **labels) == (1 if stream else 0)
    assert traced.value("llm_in_flight_requests", provider="openai_compatible", model=MODELS[operation]) == 0
    exposition = traced.openmetrics()
    assert f'# {{span_id="{record["span_id"]}",trace_id="{record["trace_id"]}"}}' in exposition


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("fault", sorted(ERRORS))
@pytest.mark.parametrize("operation,stream", CASES, ids=[f"{o}-{'stream' if s else 'plain'}" for o, s in CASES])
def test_api_error_is_counted_by_class_and_reraised_unchanged(traced: Traced, client: Any, async_client: Any,
                                                               operation: str, stream: bool, fault: str,
                                                               is_async: bool) -> None:
    """An API error reaches the user as the same class; it is counted under its class name and recorded."""
    error_class, status = ERRORS[fault]
    with pytest.raises(error_class) as caught:
        (call_async(async_client, operation, stream, fault) if is_async else call_sync(client, operation, stream, fault))
    assert type(caught.value) is error_class
    record = traced.only_record()
    labels = {"provider": "openai_compatible", "model": MODELS[operation], "operation": operation}
    assert record["status"] == "error" and record["sampled"] == "error"
    assert record["error"] == {"type": error_class.__name__, "message": str(caught.value), "status_code": status}
    assert record["input_tokens"] is None and record["cost_usd"] is None
    assert record["provider_request_id"] == caught.value.request_id
    assert traced.value("llm_errors_total", **labels, error_type=error_class.__name__) == 1
    assert traced.value("llm_requests_total", **labels, status="error") == 1
    assert traced.value("llm_request_duration_seconds_count", **labels, status="error") == 1
    assert traced.value("llm_unpriced_requests_total", provider="openai_compatible", model=MODELS[operation]) == 0
    assert traced.value("llm_in_flight_requests", provider="openai_compatible", model=MODELS[operation]) == 0


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_client_timeout_is_recorded_as_api_timeout_error(traced: Traced, llm_server: Any, is_async: bool) -> None:
    """A call that times out on the client raises APITimeoutError as usual and is recorded as one."""
    import llmmetrics

    from tests.support.llm import make_client
    client = llmmetrics.instrument(make_client(llm_server, is_async=is_async, timeout=0.3))
    with pytest.raises(openai.APITimeoutError):
        (call_async if is_async else call_sync)(client, "chat", False, "timeout")
    record = traced.only_record()
    assert record["error"]["type"] == "APITimeoutError" and record["latency_ms"] >= 300
    assert traced.value("llm_errors_total", provider="openai_compatible", model="gpt-4o-mini", operation="chat",
                        error_type="APITimeoutError") == 1


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_invalid_json_from_server_is_recorded_and_raised_unchanged(traced: Traced, client: Any, async_client: Any,
                                                                   stream: bool, is_async: bool) -> None:
    """A body that is not JSON raises the client's own JSONDecodeError (from the call or the stream)."""
    with pytest.raises(json.JSONDecodeError):
        (call_async(async_client, "chat", stream, "invalid_json") if is_async
         else call_sync(client, "chat", stream, "invalid_json"))
    record = traced.only_record()
    assert record["status"] == "error" and record["error"]["type"] == "JSONDecodeError"
    assert traced.value("llm_errors_total", provider="openai_compatible", model="gpt-4o-mini", operation="chat",
                        error_type="JSONDecodeError") == 1


@pytest.mark.parametrize("operation,stream", CASES, ids=[f"{o}-{'stream' if s else 'plain'}" for o, s in CASES])
def test_missing_usage_gives_null_cost_and_counts_unpriced(traced: Traced, client: Any, operation: str,
                                                            stream: bool) -> None:
    """Without usage the call succeeds, tokens and cost are null (never 0) and the call counts as unpriced."""
    result, _items = call_sync(client, operation, stream, "missing_usage")
    record = traced.only_record()
    assert record["status"] == "success"
    assert record["input_tokens"] is None and record["output_tokens"] is None and record["cost_usd"] is None
    assert traced.value("llm_unpriced_requests_total", provider="openai_compatible", model=MODELS[operation]) == 1
    assert traced.value("llm_tokens_total", provider="openai_compatible", model=MODELS[operation],
                        operation=operation, token_type="input") == 0


def test_unknown_model_has_null_cost_and_is_counted_unpriced(traced: Traced, client: Any) -> None:
    """A model missing from the price table gets cost_usd null and llm_unpriced_requests_total, not 0."""
    result = client.chat.completions.create(model="llama-3.1-8b-instruct", messages=MESSAGES)
    record = traced.only_record()
    assert record["input_tokens"] == result.usage.prompt_tokens
    assert record["cost_usd"] is None
    assert traced.value("llm_unpriced_requests_total", provider="openai_compatible", model="llama-3.1-8b-instruct") == 1
    assert traced.value("llm_cost_usd_total", provider="openai_compatible", model="llama-3.1-8b-instruct",
                        operation="chat") == 0


def test_reasoning_and_cached_tokens_are_split_and_billed(traced: Traced, client: Any) -> None:
    """Cached input is billed at the cached rate; reasoning tokens are part of output, billed as output."""
    long_prompt = [{"role": "user", "content": "context " * 3000}]
    result = client.chat.completions.create(model="o4-mini", messages=long_prompt)
    usage = result.usage
    cached, reasoning = usage.prompt_tokens_details.cached_tokens, usage.completion_tokens_details.reasoning_tokens
    assert cached > 0 and reasoning > 0
    record = traced.only_record()
    assert record["cached_input_tokens"] == cached and record["reasoning_tokens"] == reasoning
    expected = ((usage.prompt_tokens - cached) * 1.1 + cached * 0.275 + usage.completion_tokens * 4.4) / 1e6
    assert record["cost_usd"] == pytest.approx(expected, rel=1e-12)
    labels = {"provider": "openai_compatible", "model": "o4-mini", "operation": "chat"}
    assert traced.value("llm_tokens_total", **labels, token_type="cached_input") == cached
    assert traced.value("llm_tokens_total", **labels, token_type="reasoning") == reasoning
