"""What the real ``anthropic`` client sees of Anthropic's dialect: error bodies, headers, version, every fault."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx2
import pytest

from llmmetrics.fake import FakeLLMServer, FaultPlan
from tests.support.fake import CLAUDE, claude_client

USER = [{"role": "user", "content": "Say something."}]

STATUS_FAULTS = [("rate_limit", anthropic.RateLimitError, 429, "rate_limit_error"),
                 ("server_error", anthropic.InternalServerError, 500, "api_error"),
                 ("overloaded", anthropic.OverloadedError, 529, "overloaded_error"),
                 ("bad_request", anthropic.BadRequestError, 400, "invalid_request_error")]


def each_call(claude: anthropic.Anthropic, fault: str) -> Iterator[Callable[[], Any]]:
    """create() plain and streamed, and the messages.stream() helper, each with one forced fault."""
    headers = {"x-fake-fault": fault}
    yield lambda: claude.messages.create(model=CLAUDE, max_tokens=256, messages=USER, extra_headers=headers)
    yield lambda: list(claude.messages.create(model=CLAUDE, max_tokens=256, messages=USER, stream=True,
                                              extra_headers=headers))

    def helper() -> Any:
        with claude.messages.stream(model=CLAUDE, max_tokens=256, messages=USER, extra_headers=headers) as stream:
            return stream.get_final_message()
    yield helper


def events_until_failure(claude: anthropic.Anthropic, fault: str) -> tuple[list[Any], BaseException]:
    """The events a streamed create() yields before it raises, and what it raises."""
    received: list[Any] = []
    with pytest.raises(Exception) as caught:
        for event in claude.messages.create(model=CLAUDE, max_tokens=256, messages=USER, stream=True,
                                            extra_headers={"x-fake-fault": fault}):
            received.append(event)
    return received, caught.value


def post(server: FakeLLMServer, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("POST", "/v1/messages", body, {"content-type": "application/json", **headers})
    response = conn.getresponse()
    answer = response.status, json.loads(response.read())
    conn.close()
    return answer


class TestStatusFaults:
    @pytest.mark.parametrize(("fault", "error_class", "status", "error_type"), STATUS_FAULTS)
    def test_forced_status_fault_raises_the_matching_error(self, claude: anthropic.Anthropic, fault: str,
                                                           error_class: type, status: int, error_type: str) -> None:
        """Every call shape raises the SDK's class for the status, with Anthropic's error body and request id."""
        for call in each_call(claude, fault):
            with pytest.raises(error_class) as caught:
                call()
            error = caught.value
            assert error.status_code == status and error.type == error_type and error.api_message
            assert error.body == {"type": "error", "error": {"type": error_type, "message": error.api_message},
                                  "request_id": error.request_id}
            assert error.request_id == error.response.headers["request-id"]

    @pytest.mark.asyncio
    @pytest.mark.parametrize(("fault", "error_class", "status", "error_type"), STATUS_FAULTS)
    async def test_forced_status_fault_in_the_async_client(self, server: FakeLLMServer, fault: str,
                                                           error_class: type, status: int, error_type: str) -> None:
        """AsyncAnthropic raises the same classes, plain and streamed."""
        headers = {"x-fake-fault": fault}
        async with claude_client(server, is_async=True) as aclaude:
            with pytest.raises(error_class):
                await aclaude.messages.create(model=CLAUDE, max_tokens=256, messages=USER, extra_headers=headers)
            with pytest.raises(error_class):
                await aclaude.messages.create(model=CLAUDE, max_tokens=256, messages=USER, stream=True,
                                              extra_headers=headers)

    def test_rate_limit_says_when_to_retry(self, server: FakeLLMServer, claude: anthropic.Anthropic) -> None:
        """A planned 429 carries retry-after and the requests rate-limit headers at zero remaining."""
        server.set_faults(FaultPlan(rate_limit=1.0, retry_after_seconds=2.5))
        with pytest.raises(anthropic.RateLimitError) as caught:
            claude.messages.create(model=CLAUDE, max_tokens=256, messages=USER)
        headers = caught.value.response.headers
        assert headers["retry-after"] == "3" and headers["anthropic-ratelimit-requests-remaining"] == "0"
        assert headers["anthropic-ratelimit-requests-reset"].endswith("Z")

    def test_unknown_fault_name_is_a_clear_400(self, claude: anthropic.Anthropic) -> None:
        """A misspelt fault header is refused, listing the valid names."""
        with pytest.raises(anthropic.BadRequestError, match="rate_limit, server_error"):
            claude.messages.create(model=CLAUDE, max_tokens=256, messages=USER,
                                   extra_headers={"x-fake-fault": "overload"})


class TestStreamFaults:
    def test_stream_error_raises_after_message_start(self, claude: anthropic.Anthropic) -> None:
        """An in-stream overloaded_error event: the SDK raises APIStatusError (status 200) after message_start;
        a plain call gets OverloadedError."""
        received, error = events_until_failure(claude, "stream_error")
        assert [event.type for event in received] == ["message_start"]
        assert type(error) is anthropic.APIStatusError and error.status_code == 200
        assert error.type == "overloaded_error"
        with pytest.raises(anthropic.OverloadedError):
            claude.messages.create(model=CLAUDE, max_tokens=256, messages=USER,
                                   extra_headers={"x-fake-fault": "stream_error"})

    def test_reset_before_the_answer_and_after_message_start(self, claude: anthropic.Anthropic) -> None:
        """A plain call gets APIConnectionError; a stream yields message_start, then httpx's ReadError."""
        with pytest.raises(anthropic.APIConnectionError) as caught:
            claude.messages.create(model=CLAUDE, max_tokens=256, messages=USER, extra_headers={"x-fake-fault": "reset"})
        assert not isinstance(caught.value, anthropic.APITimeoutError)
        received, error = events_until_failure(claude, "reset")
        assert [event.type for event in received] == ["message_start"]
        assert isinstance(error, (httpx2.ReadError, httpx2.RemoteProtocolError))

    def test_stall_and_timeout_against_a_short_client_timeout(self, server: FakeLLMServer) -> None:
        """timeout: APITimeoutError from create(); stall: the same plain, and httpx's ReadTimeout mid-stream."""
        server.set_faults(FaultPlan(timeout_seconds=60))
        with claude_client(server, timeout=1.0) as impatient:
            for fault in ("timeout", "stall"):
                with pytest.raises(anthropic.APITimeoutError):
                    impatient.messages.create(model=CLAUDE, max_tokens=256, messages=USER,
                                              extra_headers={"x-fake-fault": fault})
            with pytest.raises(anthropic.APITimeoutError):
                impatient.messages.create(model=CLAUDE, max_tokens=256, messages=USER, stream=True,
                                          extra_headers={"x-fake-fault": "timeout"})
            received, error = events_until_failure(impatient, "stall")
        assert [event.type for event in received] == ["message_start"] and isinstance(error, httpx2.ReadTimeout)

    def test_stall_then_the_whole_answer(self, server: FakeLLMServer, claude: anthropic.Anthropic) -> None:
        """A patient client gets the whole stream once the stall is over."""
        server.set_faults(FaultPlan(timeout_seconds=0.05))
        with claude.messages.stream(model=CLAUDE, max_tokens=256, messages=USER,
                                    extra_headers={"x-fake-fault": "stall"}) as stream:
            assert stream.get_final_message().stop_reason in ("end_turn", "max_tokens")

    def test_invalid_json_plain_and_mid_stream(self, claude: anthropic.Anthropic) -> None:
        """A cut-off body raises json.JSONDecodeError (not an AnthropicError); streamed, after message_start."""
        with pytest.raises(json.JSONDecodeError):
            claude.messages.create(model=CLAUDE, max_tokens=256, messages=USER,
                                   extra_headers={"x-fake-fault": "invalid_json"})
        received, error = events_until_failure(claude, "invalid_json")
        assert [event.type for event in received] == ["message_start"]
        assert isinstance(error, json.JSONDecodeError) and not isinstance(error, anthropic.AnthropicError)

    def test_missing_usage(self, claude: anthropic.Anthropic) -> None:
        """No usage on the message, on message_start or on message_delta."""
        headers = {"x-fake-fault": "missing_usage"}
        assert claude.messages.create(model=CLAUDE, max_tokens=256, messages=USER, extra_headers=headers).usage is None
        events = list(claude.messages.create(model=CLAUDE, max_tokens=256, messages=USER, stream=True,
                                             extra_headers=headers))
        assert events[0].message.usage is None and events[-2].type == "message_delta" and events[-2].usage is None


class TestRequests:
    def test_anthropic_version_header_is_required(self, server: FakeLLMServer) -> None:
        """Without anthropic-version, or with one that is not a date, the API answers 400 invalid_request_error."""
        body = json.dumps({"model": CLAUDE, "max_tokens": 16, "messages": USER}).encode()
        status, error = post(server, body, {"x-api-key": "k"})
        assert status == 400 and error["error"] == {"type": "invalid_request_error",
                                                    "message": "anthropic-version: header is required"}
        assert post(server, body, {"anthropic-version": "latest"})[0] == 400
        assert post(server, body, {"anthropic-version": "2023-06-01"})[0] == 200

    def test_bad_bodies_get_the_apis_400s(self, server: FakeLLMServer, claude: anthropic.Anthropic) -> None:
        """Not JSON, no max_tokens, no messages, or a bad role: 400s that say which field."""
        version = {"anthropic-version": "2023-06-01"}
        assert post(server, b"{nope", version)[1]["error"]["message"] == "The request body is not valid JSON."
        no_limit = json.dumps({"model": CLAUDE, "messages": USER}).encode()
        assert post(server, no_limit, version)[1]["error"]["message"] == "max_tokens: Field required"
        with pytest.raises(anthropic.BadRequestError, match="at least one message"):
            claude.messages.create(model=CLAUDE, max_tokens=16, messages=[])
        with pytest.raises(anthropic.BadRequestError, match="role"):
            claude.messages.create(model=CLAUDE, max_tokens=16, messages=[{"role": "system", "content": "x"}])

    def test_credentials_are_redacted_in_the_request_log(self, server: FakeLLMServer,
                                                         claude: anthropic.Anthropic) -> None:
        """The recorded request keeps the version header and hides the API key however it was sent."""
        claude.messages.create(model=CLAUDE, max_tokens=16, messages=USER)
        recorded = server.requests[-1]
        assert recorded.path == "/v1/messages" and recorded.headers["anthropic-version"]
        assert "sk-ant-test-secret" not in repr(recorded)
        assert any(recorded.headers.get(name, "").endswith("<redacted>") for name in ("x-api-key", "authorization"))
