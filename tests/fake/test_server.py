"""The fake LLM server, driven by the real ``openai`` client over a real 127.0.0.1 socket."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import openai
import pytest

from llmmetrics.fake import FAULT_NAMES, FakeLLMServer, FaultPlan, LatencyModel

USER = [{"role": "user", "content": "Say something."}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"},
                           "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city"],
        },
    },
}


@pytest.fixture(scope="module")
def shared_server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(seed=42, latency=LatencyModel.none()) as running:
        yield running


@pytest.fixture
def server(shared_server: FakeLLMServer) -> Iterator[FakeLLMServer]:
    """The module's server, with no faults planned whatever the previous test set."""
    shared_server.set_faults(FaultPlan())
    yield shared_server
    shared_server.set_faults(FaultPlan())


@pytest.fixture(scope="module")
def shared_client(shared_server: FakeLLMServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=shared_server.base_url, api_key="sk-test-secret", max_retries=0, timeout=10) as c:
        yield c


@pytest.fixture
def client(server: FakeLLMServer, shared_client: openai.OpenAI) -> openai.OpenAI:
    return shared_client


def async_client(server: FakeLLMServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-test-secret", max_retries=0, timeout=10)


def wait_for(condition: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


# ---------------------------------------------------------------------------------------------------------
# Chat completions
# ---------------------------------------------------------------------------------------------------------


class TestChatCompletions:
    def test_answer_parses_into_openai_types_with_consistent_usage(self, client: openai.OpenAI) -> None:
        """A plain chat call yields a ChatCompletion with a dated model, text and self-consistent usage."""
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=USER)
        assert reply.object == "chat.completion"
        assert reply.model == "gpt-4o-mini-2024-07-18"
        assert reply.id.startswith("chatcmpl-")
        choice = reply.choices[0]
        assert choice.finish_reason == "stop" and choice.message.role == "assistant"
        assert reply.usage is not None
        assert reply.usage.completion_tokens == len(choice.message.content.split())
        assert 20 <= reply.usage.completion_tokens <= 80
        assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
        assert reply.usage.prompt_tokens_details.cached_tokens == 0
        assert reply.usage.completion_tokens_details.reasoning_tokens == 0

    def test_unknown_model_is_echoed(self, client: openai.OpenAI) -> None:
        """A model name the server has no snapshot for comes back unchanged."""
        assert client.chat.completions.create(model="my-finetune", messages=USER).model == "my-finetune"

    def test_token_limit_caps_the_answer(self, client: openai.OpenAI) -> None:
        """max_tokens and max_completion_tokens bound the answer and end it with finish_reason 'length'."""
        for limit_arg in ("max_tokens", "max_completion_tokens"):
            reply = client.chat.completions.create(model="gpt-4o", messages=USER, **{limit_arg: 5})
            assert reply.usage.completion_tokens == 5
            assert len(reply.choices[0].message.content.split()) == 5
            assert reply.choices[0].finish_reason == "length"

    def test_reasoning_model_reports_reasoning_tokens(self, client: openai.OpenAI) -> None:
        """o-series and gpt-5 models count reasoning tokens inside completion_tokens."""
        for model in ("o4-mini", "gpt-5"):
            reply = client.chat.completions.create(model=model, messages=USER)
            reasoning = reply.usage.completion_tokens_details.reasoning_tokens
            assert reasoning > 0
            assert reply.usage.completion_tokens == reasoning + len(reply.choices[0].message.content.split())

    def test_long_prompt_is_estimated_and_partly_cached(self, client: openai.OpenAI) -> None:
        """A 5 MB prompt counts ~4 characters a token, and its cached share is 1024 + a multiple of 128."""
        prompt = "x" * 5_000_000
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
        prompt_tokens = reply.usage.prompt_tokens
        assert 1_250_000 <= prompt_tokens <= 1_250_100
        cached = reply.usage.prompt_tokens_details.cached_tokens
        assert 1024 <= cached <= prompt_tokens and (cached - 1024) % 128 == 0 and prompt_tokens - cached < 128

    def test_stream_without_include_usage_has_no_usage_chunk(self) -> None:
        """A 60-token stream sends a role chunk, 60 one-token chunks and a finish chunk, and no usage anywhere."""
        with FakeLLMServer(answer_tokens=(60, 60)) as server, \
                openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client:
            chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True))
        assert len(chunks) == 62
        assert chunks[0].choices[0].delta.role == "assistant"
        assert all(chunk.usage is None and len(chunk.choices) == 1 for chunk in chunks)
        assert chunks[-1].choices[0].finish_reason == "stop"
        text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
        assert len(text.split()) == 60

    def test_stream_with_include_usage_ends_with_a_usage_only_chunk(self, client: openai.OpenAI) -> None:
        """With include_usage, exactly the last chunk has choices == [] and the usage; the rest carry None."""
        chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True,
                                                     stream_options={"include_usage": True}))
        *answer, last = chunks
        assert last.choices == [] and last.usage is not None
        assert all(chunk.usage is None and len(chunk.choices) == 1 for chunk in answer)
        content_deltas = [c for c in answer if c.choices[0].delta.content]
        assert last.usage.completion_tokens == len(content_deltas) == len(answer) - 2
        assert answer[-1].choices[0].finish_reason == "stop"

    def test_tools_give_a_tool_call_then_a_text_answer(self, client: openai.OpenAI) -> None:
        """With tools the model calls one with schema-shaped JSON arguments; after the tool's result it answers."""
        first = client.chat.completions.create(model="gpt-4o", messages=USER, tools=[WEATHER_TOOL])
        assert first.choices[0].finish_reason == "tool_calls"
        call = first.choices[0].message.tool_calls[0]
        assert call.function.name == "get_weather" and call.id.startswith("call_")
        arguments = json.loads(call.function.arguments)
        assert isinstance(arguments["city"], str) and isinstance(arguments["days"], int)
        assert arguments["unit"] == "celsius"
        follow_up = [*USER, first.choices[0].message.model_dump(exclude_none=True),
                     {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
        second = client.chat.completions.create(model="gpt-4o", messages=follow_up, tools=[WEATHER_TOOL])
        assert second.choices[0].finish_reason == "stop" and second.choices[0].message.content

    def test_tool_choice_none_gives_text(self, client: openai.OpenAI) -> None:
        """tool_choice='none' forbids a tool call even when tools are offered."""
        reply = client.chat.completions.create(model="gpt-4o", messages=USER, tools=[WEATHER_TOOL], tool_choice="none")
        assert reply.choices[0].message.tool_calls is None and reply.choices[0].message.content

    def test_streamed_tool_call_accumulates_in_the_stream_helper(self, client: openai.OpenAI) -> None:
        """The client's chat stream helper rebuilds the streamed tool call into valid JSON arguments."""
        with client.chat.completions.stream(model="gpt-4o", messages=USER, tools=[WEATHER_TOOL]) as stream:
            for _ in stream:
                pass
            final = stream.get_final_completion()
        assert final.choices[0].finish_reason == "tool_calls"
        assert "city" in json.loads(final.choices[0].message.tool_calls[0].function.arguments)

    @pytest.mark.asyncio
    async def test_async_client_plain_and_streamed(self, server: FakeLLMServer) -> None:
        """AsyncOpenAI gets the same answers, plain and streamed with usage."""
        async with async_client(server) as aclient:
            reply = await aclient.chat.completions.create(model="gpt-4o-mini", messages=USER)
            assert reply.usage.completion_tokens > 0
            stream = await aclient.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True,
                                                           stream_options={"include_usage": True})
            chunks = [chunk async for chunk in stream]
        assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == len(chunks) - 3


# ---------------------------------------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------------------------------------

RESPONSE_TEXT_EVENTS = ["response.created", "response.in_progress", "response.output_item.added",
                        "response.content_part.added"]
RESPONSE_CLOSING_EVENTS = ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                           "response.completed"]


class TestResponses:
    def test_answer_parses_into_a_response(self, client: openai.OpenAI) -> None:
        """A plain Responses call yields status completed, one output_text message and full usage."""
        response = client.responses.create(model="gpt-4.1", input="Hello", instructions="Be brief.")
        assert response.object == "response" and response.status == "completed"
        assert response.model == "gpt-4.1-2025-04-14"
        message = response.output[0]
        assert message.type == "message" and message.content[0].type == "output_text"
        assert message.content[0].annotations == []
        assert response.usage.output_tokens == len(response.output_text.split())
        assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
        assert response.usage.input_tokens_details.cached_tokens == 0
        assert response.usage.output_tokens_details.reasoning_tokens == 0

    def test_output_limit_makes_the_response_incomplete(self, client: openai.OpenAI) -> None:
        """max_output_tokens caps the answer and marks the response incomplete, as OpenAI does."""
        response = client.responses.create(model="gpt-4.1", input="Hello", max_output_tokens=16)
        assert response.status == "incomplete"
        assert response.incomplete_details.reason == "max_output_tokens"
        assert response.usage.output_tokens == 16

    def test_stream_emits_the_full_event_sequence(self, client: openai.OpenAI) -> None:
        """A streamed response sends every event in order, numbered, with usage on response.completed."""
        events = list(client.responses.create(model="o4-mini", input=[{"role": "user", "content": "Hi"}],
                                              stream=True))
        kinds = [event.type for event in events]
        deltas = [event for event in events if event.type == "response.output_text.delta"]
        assert kinds == RESPONSE_TEXT_EVENTS + ["response.output_text.delta"] * len(deltas) + RESPONSE_CLOSING_EVENTS
        assert [event.sequence_number for event in events] == list(range(len(events)))
        done = events[-4]
        assert "".join(delta.delta for delta in deltas) == done.text
        usage = events[-1].response.usage
        assert usage.output_tokens == len(deltas) + usage.output_tokens_details.reasoning_tokens
        assert usage.output_tokens_details.reasoning_tokens > 0

    def test_stream_helper_builds_the_final_response(self, client: openai.OpenAI) -> None:
        """The client's responses.stream helper accepts every event and assembles the final text."""
        with client.responses.stream(model="gpt-4.1", input="Hi") as stream:
            texts = [event.delta for event in stream if event.type == "response.output_text.delta"]
            final = stream.get_final_response()
        assert final.output_text == "".join(texts) and final.usage.output_tokens == len(texts)

    def test_function_tools_give_a_function_call(self, client: openai.OpenAI) -> None:
        """With function tools the response is a function_call item; streamed, its arguments arrive in pieces."""
        tool = {"type": "function", "name": "get_weather", "parameters": WEATHER_TOOL["function"]["parameters"]}
        response = client.responses.create(model="gpt-4.1", input="Weather?", tools=[tool])
        call = response.output[0]
        assert call.type == "function_call" and call.name == "get_weather"
        assert "city" in json.loads(call.arguments)
        with client.responses.stream(model="gpt-4.1", input="Weather?", tools=[tool]) as stream:
            kinds = [event.type for event in stream]
            final = stream.get_final_response()
        assert "response.function_call_arguments.delta" in kinds
        assert "city" in json.loads(final.output[0].arguments)
        after_tool = [{"role": "user", "content": "Weather?"},
                      {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}]
        assert client.responses.create(model="gpt-4.1", input=after_tool, tools=[tool]).output_text

    @pytest.mark.asyncio
    async def test_async_stream(self, server: FakeLLMServer) -> None:
        """AsyncOpenAI parses the streamed Responses events too."""
        async with async_client(server) as aclient:
            stream = await aclient.responses.create(model="gpt-4.1", input="Hi", stream=True)
            events = [event async for event in stream]
        assert events[-1].type == "response.completed" and events[-1].response.usage.total_tokens > 0


# ---------------------------------------------------------------------------------------------------------
# Embeddings and models
# ---------------------------------------------------------------------------------------------------------


class TestEmbeddings:
    def test_default_call_goes_base64_on_the_wire_and_decodes_to_floats(
            self, server: FakeLLMServer, client: openai.OpenAI) -> None:
        """The client asks for base64 unasked and decodes it; equal inputs give equal unit vectors."""
        result = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta", "alpha"])
        assert server.requests[-1].json["encoding_format"] == "base64"
        vectors = [item.embedding for item in result.data]
        assert [len(v) for v in vectors] == [64, 64, 64]
        assert vectors[0] == vectors[2] != vectors[1]
        assert abs(sum(x * x for x in vectors[0]) - 1) < 1e-4
        assert result.usage.prompt_tokens == 2 + 1 + 2 and result.model == "text-embedding-3-small"

    def test_float_and_explicit_base64_carry_the_same_numbers(self, client: openai.OpenAI) -> None:
        """encoding_format='float' returns floats; explicit 'base64' returns little-endian float32 text."""
        floats = client.embeddings.create(model="text-embedding-3-small", input="same", encoding_format="float")
        packed = client.embeddings.create(model="text-embedding-3-small", input="same", encoding_format="base64")
        raw = base64.b64decode(packed.data[0].embedding)
        assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == floats.data[0].embedding

    def test_token_arrays_and_dimensions(self, client: openai.OpenAI) -> None:
        """Token-array input counts one token per id, and 'dimensions' sets the vector length."""
        result = client.embeddings.create(model="text-embedding-3-large", input=[[1, 2, 3], [4, 5]], dimensions=8)
        assert result.usage.prompt_tokens == 5 and [len(d.embedding) for d in result.data] == [8, 8]

    @pytest.mark.asyncio
    async def test_async_embeddings(self, server: FakeLLMServer) -> None:
        """AsyncOpenAI decodes the default base64 embeddings too."""
        async with async_client(server) as aclient:
            result = await aclient.embeddings.create(model="text-embedding-3-small", input="x")
        assert len(result.data[0].embedding) == 64

    def test_models_list_and_retrieve(self, client: openai.OpenAI) -> None:
        """GET /v1/models lists models; an unknown model id is OpenAI's 404."""
        assert "gpt-4o-mini" in {model.id for model in client.models.list()}
        assert client.models.retrieve("o4-mini").id == "o4-mini"
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve("no-such-model")


# ---------------------------------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------------------------------

STATUS_FAULTS = [("rate_limit", openai.RateLimitError, 429), ("server_error", openai.InternalServerError, 500),
                 ("bad_request", openai.BadRequestError, 400)]


def call_each_operation(client: openai.OpenAI, fault: str) -> Iterator[Any]:
    """Each operation, plain and streamed, with one forced fault; yields a callable per operation."""
    headers = {"x-fake-fault": fault}
    yield lambda: client.chat.completions.create(model="gpt-4o-mini", messages=USER, extra_headers=headers)
    yield lambda: list(client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True,
                                                      extra_headers=headers))
    yield lambda: client.responses.create(model="gpt-4.1", input="Hi", extra_headers=headers)
    yield lambda: list(client.responses.create(model="gpt-4.1", input="Hi", stream=True, extra_headers=headers))
    yield lambda: client.embeddings.create(model="text-embedding-3-small", input="x", extra_headers=headers)


class TestFaults:
    @pytest.mark.parametrize(("fault", "error_class", "status"), STATUS_FAULTS)
    def test_forced_status_fault_raises_the_matching_error(self, client: openai.OpenAI, fault: str,
                                                           error_class: type, status: int) -> None:
        """x-fake-fault makes every operation, plain or streamed, raise the openai class for its status."""
        for call in call_each_operation(client, fault):
            with pytest.raises(error_class) as caught:
                call()
            assert caught.value.status_code == status
            assert caught.value.response.headers["x-request-id"].startswith("req_")
            assert caught.value.body["message"]

    @pytest.mark.asyncio
    @pytest.mark.parametrize(("fault", "error_class", "status"), STATUS_FAULTS)
    async def test_forced_status_fault_raises_in_the_async_client(self, server: FakeLLMServer, fault: str,
                                                                  error_class: type, status: int) -> None:
        """The async client raises the same classes, plain and streamed."""
        headers = {"x-fake-fault": fault}
        async with async_client(server) as aclient:
            with pytest.raises(error_class):
                await aclient.chat.completions.create(model="gpt-4o-mini", messages=USER, extra_headers=headers)
            with pytest.raises(error_class):
                await aclient.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True,
                                                      extra_headers=headers)

    def test_rate_limit_carries_retry_after_and_openai_error_code(self, server: FakeLLMServer) -> None:
        """A 429 says how long to wait (retry-after, retry-after-ms) and has code rate_limit_exceeded."""
        server.set_faults(FaultPlan(rate_limit=1.0, retry_after_seconds=1.5))
        with openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client:
            with pytest.raises(openai.RateLimitError) as caught:
                client.chat.completions.create(model="gpt-4o-mini", messages=USER)
        headers = caught.value.response.headers
        assert headers["retry-after"] == "2" and headers["retry-after-ms"] == "1500"
        assert caught.value.code == "rate_limit_exceeded" and caught.value.type == "requests"

    def test_timeout_fault_makes_a_short_timeout_client_raise(self, server: FakeLLMServer) -> None:
        """A stalled answer raises APITimeoutError in a client whose timeout is shorter than the stall."""
        server.set_faults(FaultPlan(timeout_seconds=30))
        with openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0, timeout=0.2) as client:
            for call in call_each_operation(client, "timeout"):
                with pytest.raises(openai.APITimeoutError):
                    call()

    @pytest.mark.asyncio
    async def test_timeout_fault_in_the_async_client(self, server: FakeLLMServer) -> None:
        """The async client raises APITimeoutError on a stall too."""
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0, timeout=0.3) as aclient:
            with pytest.raises(openai.APITimeoutError):
                await aclient.chat.completions.create(model="gpt-4o-mini", messages=USER,
                                                      extra_headers={"x-fake-fault": "timeout"})

    def test_timeout_fault_answers_normally_after_the_stall(self, server: FakeLLMServer) -> None:
        """A patient client gets a normal answer once the stall is over."""
        server.set_faults(FaultPlan(timeout_seconds=0.05))
        with openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client:
            reply = client.chat.completions.create(model="gpt-4o-mini", messages=USER,
                                                   extra_headers={"x-fake-fault": "timeout"})
        assert reply.usage.total_tokens > 0

    def test_invalid_json_is_a_json_decode_error_not_an_openai_error(self, client: openai.OpenAI) -> None:
        """What the user sees on a 200 with a cut-off JSON body: json.JSONDecodeError from the call itself."""
        for call in call_each_operation(client, "invalid_json"):
            with pytest.raises(json.JSONDecodeError) as caught:
                call()
            assert not isinstance(caught.value, openai.OpenAIError)

    @pytest.mark.asyncio
    async def test_invalid_json_in_the_async_client(self, server: FakeLLMServer) -> None:
        """The async client raises the same json.JSONDecodeError, plain and while iterating a stream."""
        headers = {"x-fake-fault": "invalid_json"}
        async with async_client(server) as aclient:
            with pytest.raises(json.JSONDecodeError):
                await aclient.chat.completions.create(model="gpt-4o-mini", messages=USER, extra_headers=headers)
            stream = await aclient.responses.create(model="gpt-4.1", input="Hi", stream=True, extra_headers=headers)
            with pytest.raises(json.JSONDecodeError):
                async for _ in stream:
                    pass

    def test_invalid_json_mid_stream_fails_after_the_first_chunk(self, client: openai.OpenAI) -> None:
        """Streamed, the first chunk arrives intact and the cut-off one raises JSONDecodeError while iterating."""
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True,
                                                extra_headers={"x-fake-fault": "invalid_json"})
        received = []
        with pytest.raises(json.JSONDecodeError):
            for chunk in stream:
                received.append(chunk)
        assert len(received) == 1 and received[0].choices[0].delta.role == "assistant"

    def test_missing_usage(self, client: openai.OpenAI) -> None:
        """missing_usage answers normally but with usage None — and no usage chunk even when asked for."""
        headers = {"x-fake-fault": "missing_usage"}
        assert client.chat.completions.create(model="gpt-4o-mini", messages=USER, extra_headers=headers).usage is None
        chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True,
                                                     stream_options={"include_usage": True}, extra_headers=headers))
        assert all(chunk.usage is None and chunk.choices for chunk in chunks)
        assert client.responses.create(model="gpt-4.1", input="Hi", extra_headers=headers).usage is None
        events = list(client.responses.create(model="gpt-4.1", input="Hi", stream=True, extra_headers=headers))
        assert events[-1].type == "response.completed" and events[-1].response.usage is None
        assert client.embeddings.create(model="text-embedding-3-small", input="x", extra_headers=headers).usage is None

    def test_header_none_overrides_the_plan(self, server: FakeLLMServer, client: openai.OpenAI) -> None:
        """x-fake-fault: none succeeds even when the plan fails every request."""
        server.set_faults(FaultPlan(server_error=1.0))
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="gpt-4o-mini", messages=USER)
        assert client.chat.completions.create(model="gpt-4o-mini", messages=USER,
                                              extra_headers={"x-fake-fault": "none"}).choices

    def test_unknown_fault_name_is_a_clear_400(self, client: openai.OpenAI) -> None:
        """A misspelt fault header is refused with a message listing the valid names."""
        with pytest.raises(openai.BadRequestError, match="rate_limit, server_error"):
            client.chat.completions.create(model="gpt-4o-mini", messages=USER,
                                           extra_headers={"x-fake-fault": "rate-limit"})

    def test_seeded_plan_is_reproducible_and_mixes_outcomes(self) -> None:
        """Two servers with one seed fail the same requests; a 50 % plan yields both outcomes."""
        def outcomes(seed: int) -> list[str]:
            with FakeLLMServer(seed=seed, faults=FaultPlan(rate_limit=0.5)) as server, \
                    openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client:
                seen = []
                for _ in range(30):
                    try:
                        reply = client.chat.completions.create(model="gpt-4o-mini", messages=USER)
                        seen.append(reply.choices[0].message.content)
                    except openai.RateLimitError:
                        seen.append("429")
                return seen
        first, second = outcomes(7), outcomes(7)
        assert first == second
        assert 5 <= first.count("429") <= 25

    def test_set_faults_takes_effect_for_the_next_request(self, server: FakeLLMServer,
                                                          client: openai.OpenAI) -> None:
        """set_faults switches behaviour at run time without a restart."""
        client.chat.completions.create(model="gpt-4o-mini", messages=USER)
        server.set_faults(FaultPlan(bad_request=1.0))
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="gpt-4o-mini", messages=USER)
        server.set_faults(FaultPlan())
        client.chat.completions.create(model="gpt-4o-mini", messages=USER)

    def test_fault_plan_refuses_bad_shares(self) -> None:
        """Shares outside 0..1 or adding up past 1 are refused at construction."""
        with pytest.raises(ValueError, match="add up"):
            FaultPlan(rate_limit=0.6, server_error=0.6)
        with pytest.raises(ValueError, match="within 0..1"):
            FaultPlan(timeout=-0.1)
        plan = FaultPlan.with_error_rate(0.05)
        assert abs(plan.total - 0.05) < 1e-9 and set(FAULT_NAMES) == {n for n in FAULT_NAMES if getattr(plan, n)}


# ---------------------------------------------------------------------------------------------------------
# HTTP behaviour
# ---------------------------------------------------------------------------------------------------------


class TestHttp:
    def test_every_answer_has_a_request_id_and_processing_time(self, client: openai.OpenAI) -> None:
        """x-request-id is req_<32 hex>, unique per request; openai-processing-ms is present."""
        ids = set()
        for _ in range(3):
            raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=USER)
            assert re.fullmatch(r"req_[0-9a-f]{32}", raw.headers["x-request-id"])
            assert int(raw.headers["openai-processing-ms"]) >= 0
            assert raw.parse().choices
            ids.add(raw.headers["x-request-id"])
        assert len(ids) == 3

    def test_unknown_path_is_an_openai_404(self, client: openai.OpenAI) -> None:
        """Anything not served is OpenAI's 'Invalid URL' 404, which the client raises as NotFoundError."""
        with pytest.raises(openai.NotFoundError, match="Invalid URL"):
            client.post("/completions", body={"model": "x", "prompt": "y"}, cast_to=object)

    def test_bad_bodies_get_clear_400s(self, server: FakeLLMServer, client: openai.OpenAI) -> None:
        """A body that is not JSON, or lacks a required field, gets a 400 naming the problem."""
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.request("POST", "/v1/chat/completions", b"{not json", {"content-type": "application/json"})
        response = conn.getresponse()
        assert response.status == 400 and "could not parse the JSON body" in json.loads(response.read())["error"]["message"]
        conn.close()
        with pytest.raises(openai.BadRequestError, match="messages"):
            client.chat.completions.create(model="gpt-4o-mini", messages=[])

    def test_chunked_request_bodies_and_garbage_on_the_wire(self, server: FakeLLMServer) -> None:
        """A chunked request body is read; bytes that are not HTTP get a JSON 400 and a closed connection."""
        body = json.dumps({"model": "gpt-4o-mini", "messages": USER}).encode()
        chunked = (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n"
                   b"content-type: application/json\r\nconnection: close\r\n\r\n"
                   + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        for request, status in ((chunked, b"200"), (b"GARBAGE\r\n\r\n", b"400"),
                                (b"POST /v1/embeddings HTTP/1.1\r\ncontent-length: abc\r\n\r\n", b"400")):
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
                conn.sendall(request)
                answer = b""
                while chunk := conn.recv(65536):  # the server closes the connection after answering
                    answer += chunk
            head, _, payload = answer.partition(b"\r\n\r\n")
            assert head.split(b" ")[1] == status
            assert json.loads(payload)["error" if status != b"200" else "object"]

    def test_keep_alive_serves_many_requests_and_streams_on_one_connection(self, server: FakeLLMServer) -> None:
        """One TCP connection carries plain answers and chunked SSE streams back to back."""
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.connect()
        first_socket = conn.sock
        for stream in (False, True, False, True):
            body = json.dumps({"model": "gpt-4o-mini", "messages": USER, "stream": stream})
            conn.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
            response = conn.getresponse()
            payload = response.read()
            assert response.status == 200
            if stream:
                assert response.getheader("transfer-encoding") == "chunked"
                assert payload.endswith(b"data: [DONE]\n\n")
            else:
                assert int(response.getheader("content-length")) == len(payload)
        assert conn.sock is first_socket
        conn.close()

    def test_recorded_requests_redact_the_key_and_are_bounded(self) -> None:
        """requests keeps method, path, headers and JSON body, hides the API key, and keeps only the newest."""
        with FakeLLMServer(max_recorded_requests=2) as server, \
                openai.OpenAI(base_url=server.base_url, api_key="sk-test-secret", max_retries=0) as client:
            for n in range(3):
                client.chat.completions.create(model=f"m{n}", messages=USER)
            recorded = server.requests
        assert [r.json["model"] for r in recorded] == ["m1", "m2"]
        assert recorded[0].method == "POST" and recorded[0].path == "/v1/chat/completions"
        assert recorded[0].headers["authorization"] == "Bearer <redacted>"
        assert "sk-test-secret" not in repr(recorded)

    def test_twenty_threads_at_once(self, server: FakeLLMServer, client: openai.OpenAI) -> None:
        """Concurrent calls from 20 threads, mixing streams and plain calls, all succeed."""
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for _ in range(3):
                    if n % 2:
                        list(client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True,
                                                            extra_headers=marker))
                    else:
                        client.chat.completions.create(model="gpt-4o-mini", messages=USER, extra_headers=marker)
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        marker = {"x-test-marker": "twenty-threads"}
        threads = [threading.Thread(target=work, args=(n,)) for n in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
        assert sum(r.headers.get("x-test-marker") == "twenty-threads" for r in server.requests) == 60

    @pytest.mark.asyncio
    async def test_concurrent_async_calls(self, server: FakeLLMServer) -> None:
        """Twenty concurrent AsyncOpenAI calls all succeed."""
        async with async_client(server) as aclient:
            replies = await asyncio.gather(*(aclient.chat.completions.create(model="gpt-4o-mini", messages=USER)
                                             for _ in range(20)))
        assert all(reply.usage.completion_tokens > 0 for reply in replies)

    def test_stop_is_prompt_with_a_request_in_flight(self) -> None:
        """stop() returns within seconds while a request is stalled, and the waiting client gets an error."""
        server = FakeLLMServer(faults=FaultPlan(timeout=1.0, timeout_seconds=60)).start()
        outcome: list[BaseException] = []

        def call() -> None:
            with openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0, timeout=30) as client:
                try:
                    client.chat.completions.create(model="gpt-4o-mini", messages=USER)
                except BaseException as exc:  # asserted below
                    outcome.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        assert wait_for(lambda: len(server.requests) == 1)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 3
        caller.join(10)
        assert not caller.is_alive()
        assert len(outcome) == 1 and isinstance(outcome[0], openai.APIConnectionError)

    def test_port_zero_gives_distinct_free_ports(self) -> None:
        """Servers started on port 0 each get their own free port and both serve."""
        with FakeLLMServer() as a, FakeLLMServer() as b:
            assert a.port != b.port and a.port > 0
            for server in (a, b):
                with openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client:
                    assert client.models.list().data

    def test_seeded_servers_answer_identically(self) -> None:
        """With one seed, the same request sequence gets the same text and usage."""
        def answers() -> list[tuple[str, int]]:
            with FakeLLMServer(seed=3) as server, \
                    openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client:
                replies = [client.chat.completions.create(model="gpt-4o-mini", messages=USER) for _ in range(3)]
            return [(r.choices[0].message.content, r.usage.total_tokens) for r in replies]
        assert answers() == answers()


# ---------------------------------------------------------------------------------------------------------
# Latency
# ---------------------------------------------------------------------------------------------------------


class TestLatency:
    def test_time_to_first_token_and_pace_are_applied(self) -> None:
        """A fixed 0.2 s first-token delay and 10 ms a token hold the stream back at least that long."""
        latency = LatencyModel(time_to_first_token=(0.2, 0.2), per_token=(0.01, 0.01), slow_share=0.0)
        with FakeLLMServer(latency=latency) as server, \
                openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client:
            started = time.monotonic()
            stream = client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True, max_tokens=10)
            first = next(iter(stream))
            first_at = time.monotonic() - started
            rest = list(stream)
            total = time.monotonic() - started
        assert first.choices[0].delta.role == "assistant" and len(rest) == 11
        assert first_at >= 0.2 and total >= 0.2 + 0.1

    def test_slow_share_adds_the_slow_delay(self) -> None:
        """With slow_share=1 every call carries the extra slow-call delay."""
        latency = LatencyModel(time_to_first_token=(0.0, 0.0), per_token=(0.0, 0.0), slow_share=1.0,
                               slow_extra_seconds=(0.3, 0.3))
        with FakeLLMServer(latency=latency) as server, \
                openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client:
            started = time.monotonic()
            client.chat.completions.create(model="gpt-4o-mini", messages=USER)
            assert time.monotonic() - started >= 0.3

    def test_latency_model_refuses_bad_ranges(self) -> None:
        """Ranges with low > high, negative values or a share outside 0..1 are refused."""
        with pytest.raises(ValueError, match="time_to_first_token"):
            LatencyModel(time_to_first_token=(0.5, 0.1))
        with pytest.raises(ValueError, match="slow_share"):
            LatencyModel(slow_share=2)
        assert LatencyModel.none().is_zero and not LatencyModel().is_zero


# ---------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------


def test_command_line_serves_until_interrupted() -> None:
    """`python -m llmmetrics.fake_server` prints its base URL, serves the client, and exits 0 on Ctrl-C."""
    repo_root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(repo_root), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "llmmetrics.fake_server", "--port", "0", "--no-latency", "--seed", "1"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as process:
        try:
            base_url = process.stdout.readline().strip()
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", base_url), process.stderr.read()
            with openai.OpenAI(base_url=base_url, api_key="k", max_retries=0) as client:
                assert client.chat.completions.create(model="gpt-4o-mini", messages=USER).choices
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()
