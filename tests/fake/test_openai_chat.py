"""``POST /v1/chat/completions`` through the real ``openai`` client."""

from __future__ import annotations

import json

import openai
import pytest

from llmmetrics.fake import FakeLLMServer
from tests.support.fake import USER, WEATHER_TOOL, async_client


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
