"""Anthropic's Messages API (first-party and Vertex routes) through the real ``anthropic`` client."""

from __future__ import annotations

import http.client
import json
import re
import secrets
from typing import Any

import anthropic
import pytest

from llmmetrics.fake import FakeLLMServer
from tests.support.fake import CLAUDE, CLAUDE_WEATHER_TOOL, claude_client

USER = [{"role": "user", "content": "Say something."}]
USER_TOKENS = 3 + 4 + 4  # priming, one message's framing, "Say something." (14 characters)
MESSAGE_ID = re.compile(r"msg_01[A-Za-z0-9]{22}")


def raw_stream_events(server: FakeLLMServer, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of a streamed answer read straight off the wire, pings included."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("POST", "/v1/messages", json.dumps({**body, "stream": True}),
                 {"content-type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": "k"})
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("content-type").startswith("text/event-stream")
    events = []
    for frame in response.read().decode().split("\n\n"):
        if frame:
            name_line, data_line = frame.split("\n")
            events.append((name_line.removeprefix("event: "), json.loads(data_line.removeprefix("data: "))))
    conn.close()
    return events


def cached_system(tokens: int, **marker: str) -> list[dict[str, Any]]:
    """A system prompt of ``tokens`` tokens (unique to the test, so the server's cache starts cold) with a
    cache breakpoint."""
    text = secrets.token_hex(8) + "x" * (tokens * 4 - 16)
    return [{"type": "text", "text": text, "cache_control": {"type": "ephemeral", **marker}}]


class TestPlainMessages:
    def test_answer_parses_into_a_message_with_anthropic_usage(self, claude: anthropic.Anthropic) -> None:
        """A plain call yields a Message: dated model, one text block, end_turn, usage by the documented rule."""
        message = claude.messages.create(model=CLAUDE, max_tokens=1024, messages=USER)
        assert MESSAGE_ID.fullmatch(message.id) and message.type == "message" and message.role == "assistant"
        assert message.model == "claude-haiku-4-5-20251001"
        [block] = message.content
        assert block.type == "text" and message.stop_reason == "end_turn" and message.stop_sequence is None
        usage = message.usage
        assert usage.output_tokens == len(block.text.split()) and 20 <= usage.output_tokens <= 80
        assert usage.input_tokens == USER_TOKENS
        assert usage.cache_read_input_tokens == usage.cache_creation_input_tokens == 0
        assert usage.cache_creation.ephemeral_5m_input_tokens == usage.cache_creation.ephemeral_1h_input_tokens == 0
        assert usage.service_tier == "standard" and usage.output_tokens_details is None

    def test_unknown_model_is_echoed(self, claude: anthropic.Anthropic) -> None:
        """A model with no known snapshot comes back as sent."""
        assert claude.messages.create(model="claude-opus-4-6", max_tokens=64, messages=USER).model == "claude-opus-4-6"

    def test_max_tokens_cuts_the_answer(self, claude: anthropic.Anthropic) -> None:
        """max_tokens bounds the answer and ends it with stop_reason max_tokens."""
        message = claude.messages.create(model=CLAUDE, max_tokens=5, messages=USER)
        assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 5
        assert len(message.content[0].text.split()) == 5

    def test_raw_response_carries_the_request_id(self, claude: anthropic.Anthropic) -> None:
        """with_raw_response shows request-id (req_011C…, unique) and organization headers; parse() gives the Message."""
        ids = set()
        for _ in range(3):
            raw = claude.messages.with_raw_response.create(model=CLAUDE, max_tokens=64, messages=USER)
            assert re.fullmatch(r"req_011C[A-Za-z0-9]{20}", raw.headers["request-id"])
            assert raw.headers["anthropic-organization-id"]
            assert raw.parse().content[0].text
            ids.add(raw.headers["request-id"])
        assert len(ids) == 3

    def test_count_tokens_is_the_prompt_a_message_reports(self, claude: anthropic.Anthropic) -> None:
        """messages.count_tokens answers the same prompt size as a message's usage."""
        assert claude.messages.count_tokens(model=CLAUDE, messages=USER).input_tokens == USER_TOKENS

    @pytest.mark.asyncio
    async def test_async_client(self, server: FakeLLMServer) -> None:
        """AsyncAnthropic gets the same Message."""
        async with claude_client(server, is_async=True) as aclaude:
            message = await aclaude.messages.create(model=CLAUDE, max_tokens=1024, messages=USER)
        assert message.usage.output_tokens == len(message.content[0].text.split())


class TestStreams:
    def test_wire_sequence_has_every_event_in_order(self, server: FakeLLMServer) -> None:
        """message_start (output_tokens 1), content_block_start, ping, N text_deltas, stop, message_delta, message_stop."""
        events = raw_stream_events(server, {"model": CLAUDE, "max_tokens": 1024, "messages": USER})
        names = [name for name, _ in events]
        deltas = names.count("content_block_delta")
        assert names == ["message_start", "content_block_start", "ping", *["content_block_delta"] * deltas,
                         "content_block_stop", "message_delta", "message_stop"]
        assert all(data["type"] == name for name, data in events)
        start = events[0][1]["message"]
        assert start["content"] == [] and start["stop_reason"] is None and start["usage"]["output_tokens"] == 1
        assert start["usage"]["input_tokens"] == USER_TOKENS
        assert events[1][1]["content_block"] == {"type": "text", "text": ""}
        assert {data["delta"]["type"] for name, data in events if name == "content_block_delta"} == {"text_delta"}
        final = events[-2][1]
        assert final["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
        assert final["usage"] == {"input_tokens": USER_TOKENS, "cache_creation_input_tokens": 0,
                                  "cache_read_input_tokens": 0, "output_tokens": deltas}

    def test_create_stream_yields_typed_events(self, claude: anthropic.Anthropic) -> None:
        """create(stream=True) yields the SDK's raw event types (it drops pings), usage on start and delta."""
        events = list(claude.messages.create(model=CLAUDE, max_tokens=1024, messages=USER, stream=True))
        assert events[0].type == "message_start" and events[0].message.usage.input_tokens == USER_TOKENS
        assert [e.type for e in events[-3:]] == ["content_block_stop", "message_delta", "message_stop"]
        text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
        assert events[-2].usage.output_tokens == len(text.split()) and events[-2].delta.stop_reason == "end_turn"

    def test_stream_helper_text_and_final_message(self, claude: anthropic.Anthropic) -> None:
        """messages.stream(): text_stream joins into get_final_message()'s text, with merged usage."""
        with claude.messages.stream(model=CLAUDE, max_tokens=1024, messages=USER) as stream:
            pieces = list(stream.text_stream)
            final = stream.get_final_message()
        assert "".join(pieces) == final.content[0].text and final.stop_reason == "end_turn"
        assert final.usage.output_tokens == len(pieces) and final.usage.input_tokens == USER_TOKENS

    @pytest.mark.asyncio
    async def test_async_stream_helper(self, server: FakeLLMServer) -> None:
        """The async stream helper assembles the same final message."""
        async with claude_client(server, is_async=True) as aclaude:
            async with aclaude.messages.stream(model=CLAUDE, max_tokens=1024, messages=USER) as stream:
                pieces = [piece async for piece in stream.text_stream]
                final = await stream.get_final_message()
        assert "".join(pieces) == final.content[0].text and final.usage.output_tokens == len(pieces)


class TestTools:
    def test_tool_use_then_a_text_answer_after_the_result(self, claude: anthropic.Anthropic) -> None:
        """With tools the model says a sentence and calls one with schema-shaped input; after its result it answers."""
        first = claude.messages.create(model=CLAUDE, max_tokens=1024, messages=USER, tools=[CLAUDE_WEATHER_TOOL])
        assert first.stop_reason == "tool_use" and [b.type for b in first.content] == ["text", "tool_use"]
        call = first.content[1]
        assert call.name == "get_weather" and re.fullmatch(r"toolu_01[A-Za-z0-9]{22}", call.id)
        assert isinstance(call.input["city"], str) and isinstance(call.input["days"], int)
        assert call.input["unit"] == "celsius"
        follow_up = [*USER, {"role": "assistant", "content": [b.model_dump() for b in first.content]},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}]}]
        second = claude.messages.create(model=CLAUDE, max_tokens=1024, messages=follow_up, tools=[CLAUDE_WEATHER_TOOL])
        assert second.stop_reason == "end_turn" and [b.type for b in second.content] == ["text"]

    def test_tool_choice_none_and_named(self, claude: anthropic.Anthropic) -> None:
        """tool_choice none gives text; a named tool is the one called."""
        other = {"name": "lookup_order", "input_schema": {"type": "object", "properties": {"id": {"type": "integer"}}}}
        tools = [CLAUDE_WEATHER_TOOL, other]
        plain = claude.messages.create(model=CLAUDE, max_tokens=1024, messages=USER, tools=tools,
                                       tool_choice={"type": "none"})
        assert plain.stop_reason == "end_turn"
        named = claude.messages.create(model=CLAUDE, max_tokens=1024, messages=USER, tools=tools,
                                       tool_choice={"type": "tool", "name": "lookup_order"})
        assert named.content[-1].name == "lookup_order" and isinstance(named.content[-1].input["id"], int)

    def test_streamed_tool_input_accumulates_in_the_stream_helper(self, claude: anthropic.Anthropic) -> None:
        """input_json_delta pieces rebuild the tool input in messages.stream()'s final message."""
        with claude.messages.stream(model=CLAUDE, max_tokens=1024, messages=USER, tools=[CLAUDE_WEATHER_TOOL]) as s:
            kinds = [event.type for event in s]
            final = s.get_final_message()
        assert "input_json" in kinds and final.stop_reason == "tool_use"
        assert isinstance(final.content[1].input["city"], str)


class TestThinking:
    def test_thinking_block_comes_first_and_counts_as_output(self, claude: anthropic.Anthropic) -> None:
        """thinking enabled: a signed thinking block first, within budget, counted in output_tokens and its details."""
        message = claude.messages.create(model=CLAUDE, max_tokens=4096, messages=USER,
                                         thinking={"type": "enabled", "budget_tokens": 1024})
        thinking, text = message.content
        assert thinking.type == "thinking" and thinking.signature and text.type == "text"
        thought = message.usage.output_tokens_details.thinking_tokens
        assert thought == len(thinking.thinking.split()) <= 1024 and thought > 0
        assert message.usage.output_tokens == thought + len(text.text.split())

    def test_streamed_thinking_and_signature_deltas(self, claude: anthropic.Anthropic) -> None:
        """The stream sends thinking_delta then one signature_delta before the thinking block stops."""
        with claude.messages.stream(model=CLAUDE, max_tokens=4096, messages=USER,
                                    thinking={"type": "adaptive"}) as stream:
            events = list(stream)
            final = stream.get_final_message()
        deltas = [e.delta.type for e in events if e.type == "content_block_delta" and e.index == 0]
        assert deltas[-1] == "signature_delta" and set(deltas[:-1]) == {"thinking_delta"}
        assert final.content[0].signature and final.content[0].thinking
        assert final.usage.output_tokens_details.thinking_tokens == len(final.content[0].thinking.split())

    def test_omitted_display_keeps_only_the_signature(self, claude: anthropic.Anthropic) -> None:
        """display omitted: empty thinking text, signature present, tokens still counted."""
        message = claude.messages.create(model=CLAUDE, max_tokens=4096, messages=USER,
                                         thinking={"type": "enabled", "budget_tokens": 2048, "display": "omitted"})
        assert message.content[0].thinking == "" and message.content[0].signature
        assert message.usage.output_tokens_details.thinking_tokens > 0

    def test_budget_rules_are_the_apis(self, claude: anthropic.Anthropic) -> None:
        """A budget under 1024 or not below max_tokens is a 400."""
        with pytest.raises(anthropic.BadRequestError, match="greater than or equal to 1024"):
            claude.messages.create(model=CLAUDE, max_tokens=4096, messages=USER,
                                   thinking={"type": "enabled", "budget_tokens": 500})
        with pytest.raises(anthropic.BadRequestError, match="budget_tokens"):
            claude.messages.create(model=CLAUDE, max_tokens=2000, messages=USER,
                                   thinking={"type": "enabled", "budget_tokens": 2000})


class TestPromptCache:
    def test_first_call_creates_the_next_ones_read(self, claude: anthropic.Anthropic) -> None:
        """A 1,250-token cached system prompt: created on the first call, read on the next; input is the rest."""
        system = cached_system(1250)
        usages = [claude.messages.create(model=CLAUDE, max_tokens=64, system=system, messages=USER).usage
                  for _ in range(2)]
        assert (usages[0].cache_creation_input_tokens, usages[0].cache_read_input_tokens) == (1250, 0)
        assert usages[0].cache_creation.ephemeral_5m_input_tokens == 1250
        assert (usages[1].cache_creation_input_tokens, usages[1].cache_read_input_tokens) == (0, 1250)
        assert usages[0].input_tokens == usages[1].input_tokens == USER_TOKENS

    def test_a_growing_conversation_reads_its_previous_prefix(self, claude: anthropic.Anthropic) -> None:
        """Moving the breakpoint to the newest turn reads the prefix cached at the old one and creates only the
        new turns."""
        system = cached_system(1250)
        turn = [{"type": "text", "text": "y" * 400, "cache_control": {"type": "ephemeral"}}]  # 100 tokens
        first = [{"role": "user", "content": turn}]
        grown = [{"role": "user", "content": [{"type": "text", "text": "y" * 400}]},
                 {"role": "assistant", "content": "z" * 40}, {"role": "user", "content": turn}]
        one = claude.messages.create(model=CLAUDE, max_tokens=64, system=system, messages=first).usage
        two = claude.messages.create(model=CLAUDE, max_tokens=64, system=system, messages=grown).usage
        assert (one.cache_creation_input_tokens, one.cache_read_input_tokens, one.input_tokens) == (1250 + 104, 0, 3)
        assert two.cache_read_input_tokens == 1250 + 104
        assert two.cache_creation_input_tokens == (4 + 10) + (4 + 100) and two.input_tokens == 3

    def test_ttl_small_prefixes_and_top_level_cache_control(self, claude: anthropic.Anthropic) -> None:
        """ttl 1h is reported apart; a prefix under 1,024 tokens is not cached; a top-level cache_control caches
        the whole prompt."""
        hour = claude.messages.create(model=CLAUDE, max_tokens=64, system=cached_system(1100, ttl="1h"),
                                      messages=USER).usage
        assert hour.cache_creation.ephemeral_1h_input_tokens == 1100 and hour.cache_creation.ephemeral_5m_input_tokens == 0
        small = cached_system(500)
        for _ in range(2):
            usage = claude.messages.create(model=CLAUDE, max_tokens=64, system=small, messages=USER).usage
            assert usage.cache_creation_input_tokens == usage.cache_read_input_tokens == 0
        long_question = [{"role": "user", "content": secrets.token_hex(8) + "q" * 4984}]  # 1250 tokens + framing
        auto = [claude.messages.create(model=CLAUDE, max_tokens=64, messages=long_question,
                                       cache_control={"type": "ephemeral"}).usage for _ in range(2)]
        assert auto[0].cache_creation_input_tokens == auto[1].cache_read_input_tokens == 1254
        assert auto[0].input_tokens == auto[1].input_tokens == 3


class TestVertex:
    @pytest.fixture
    def vertex(self, server: FakeLLMServer) -> anthropic.AnthropicVertex:
        return anthropic.AnthropicVertex(region="us-east5", project_id="fake-project", access_token="ya29.fake",
                                         base_url=server.base_url, max_retries=0, timeout=10)

    def test_raw_predict_and_stream_raw_predict(self, server: FakeLLMServer, vertex: anthropic.AnthropicVertex) -> None:
        """AnthropicVertex calls :rawPredict and :streamRawPredict with the model in the path and gets Vertex ids;
        count_tokens goes to count-tokens:rawPredict."""
        message = vertex.messages.create(model="claude-sonnet-4-5@20250929", max_tokens=1024, messages=USER)
        assert re.fullmatch(r"msg_vrtx_01[A-Za-z0-9]{22}", message.id)
        assert message.model == "claude-sonnet-4-5-20250929" and message.usage.input_tokens == USER_TOKENS
        recorded = server.requests[-1]
        assert recorded.path == ("/v1/projects/fake-project/locations/us-east5/publishers/anthropic/models/"
                                 "claude-sonnet-4-5@20250929:rawPredict")
        assert "model" not in recorded.json and recorded.json["anthropic_version"]
        with vertex.messages.stream(model="claude-haiku-4-5", max_tokens=1024, messages=USER) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        assert server.requests[-1].path.endswith("/models/claude-haiku-4-5:streamRawPredict")
        assert final.content[0].text == text and final.model == "claude-haiku-4-5-20251001"
        assert vertex.messages.count_tokens(model="claude-haiku-4-5", messages=USER).input_tokens == USER_TOKENS
        assert server.requests[-1].path.endswith("/models/count-tokens:rawPredict")

    def test_vertex_errors(self, vertex: anthropic.AnthropicVertex) -> None:
        """A Vertex 429 is Google's RESOURCE_EXHAUSTED body; overload is Anthropic's 529; no request-id header."""
        with pytest.raises(anthropic.RateLimitError) as limited:
            vertex.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=USER,
                                   extra_headers={"x-fake-fault": "rate_limit"})
        assert limited.value.body["error"]["status"] == "RESOURCE_EXHAUSTED" and limited.value.request_id is None
        with pytest.raises(anthropic.OverloadedError) as overloaded:
            vertex.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=USER,
                                   extra_headers={"x-fake-fault": "overloaded"})
        assert overloaded.value.type == "overloaded_error"


def test_seeded_servers_answer_identically() -> None:
    """With one seed the same Anthropic request sequence gets the same text and usage."""
    def answers() -> list[tuple[str, int]]:
        with FakeLLMServer(seed=5) as server, claude_client(server) as claude:
            replies = [claude.messages.create(model=CLAUDE, max_tokens=1024, messages=USER) for _ in range(3)]
        return [(r.content[0].text, r.usage.output_tokens) for r in replies]
    assert answers() == answers()
