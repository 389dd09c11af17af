"""``POST /v1/responses`` through the real ``openai`` client."""

from __future__ import annotations

import json

import openai
import pytest

from llmmetrics.fake import FakeLLMServer
from tests.support.fake import WEATHER_TOOL, async_client


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
