"""What the real ``openai`` client sees of the OpenAI dialect: headers, errors and every fault."""

from __future__ import annotations

import http.client
import json
import re
from typing import Any, Iterator

import openai
import pytest

from llmmetrics.fake import FakeLLMServer, FaultPlan
from tests.support.fake import USER, async_client


STATUS_FAULTS = [("rate_limit", openai.RateLimitError, 429), ("server_error", openai.InternalServerError, 500),
                 ("overloaded", openai.InternalServerError, 503), ("bad_request", openai.BadRequestError, 400)]


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

    def test_stream_error_fails_a_stream_after_its_first_chunk(self, client: openai.OpenAI) -> None:
        """A chat stream yields its role chunk and then raises openai.APIError (no status); a plain call gets 500;
        a Responses stream ends with response.failed."""
        headers = {"x-fake-fault": "stream_error"}
        received = []
        with pytest.raises(openai.APIError) as caught:
            for chunk in client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True,
                                                        extra_headers=headers):
                received.append(chunk)
        assert not isinstance(caught.value, openai.APIStatusError) and caught.value.body["type"] == "server_error"
        assert len(received) == 1 and received[0].choices[0].delta.role == "assistant"
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="gpt-4o-mini", messages=USER, extra_headers=headers)
        events = list(client.responses.create(model="gpt-4.1", input="Hi", stream=True, extra_headers=headers))
        assert [event.type for event in events] == ["response.created", "response.failed"]
        assert events[1].response.status == "failed" and events[1].response.error.code == "server_error"

    def test_reset_is_a_connection_error_before_or_after_the_first_chunk(self, client: openai.OpenAI) -> None:
        """A reset answers every operation with APIConnectionError; a stream raises it after its first chunk."""
        for call in call_each_operation(client, "reset"):
            with pytest.raises(openai.APIConnectionError) as caught:
                call()
            assert not isinstance(caught.value, openai.APITimeoutError)
        received = []
        with pytest.raises(openai.APIConnectionError):
            for chunk in client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True,
                                                        extra_headers={"x-fake-fault": "reset"}):
                received.append(chunk)
        assert len(received) == 1

    def test_stall_times_out_a_stream_after_its_first_chunk(self, server: FakeLLMServer) -> None:
        """A stall sends the head and first chunk, then nothing: a shorter client timeout fires mid-stream."""
        server.set_faults(FaultPlan(timeout_seconds=60))
        headers = {"x-fake-fault": "stall"}
        with openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0, timeout=1.0) as client:
            with pytest.raises(openai.APITimeoutError):
                client.chat.completions.create(model="gpt-4o-mini", messages=USER, extra_headers=headers)
            received = []
            with pytest.raises(openai.APITimeoutError):
                for chunk in client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True,
                                                            extra_headers=headers):
                    received.append(chunk)
        assert len(received) == 1

    def test_unknown_fault_name_is_a_clear_400(self, client: openai.OpenAI) -> None:
        """A misspelt fault header is refused with a message listing the valid names."""
        with pytest.raises(openai.BadRequestError, match="rate_limit, server_error"):
            client.chat.completions.create(model="gpt-4o-mini", messages=USER,
                                           extra_headers={"x-fake-fault": "rate-limit"})


class TestOpenAIHeadersAndErrors:
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
