"""Anthropic on Amazon Bedrock through the real ``anthropic.AnthropicBedrock`` (botocore SigV4 and event stream)."""

from __future__ import annotations

import http.client
import json
import re
import secrets
import struct
import zlib
from collections.abc import Iterator

import anthropic
import httpx2
import pytest

from llmmetrics.fake import FakeLLMServer
from llmmetrics.fake.bedrock import encode_message

MODEL = "anthropic.claude-haiku-4-5-20251001-v1:0"
USER = [{"role": "user", "content": "Say something."}]
USER_TOKENS = 11


@pytest.fixture
def bedrock(server: FakeLLMServer) -> Iterator[anthropic.AnthropicBedrock]:
    with anthropic.AnthropicBedrock(aws_region="us-east-1", aws_access_key="AKIAFAKEFAKEFAKEFAKE",
                                    aws_secret_key="fake-secret", base_url=server.url, max_retries=0,
                                    timeout=10) as client:
        yield client


def test_invoke_is_signed_and_answers_a_bedrock_message(server: FakeLLMServer,
                                                        bedrock: anthropic.AnthropicBedrock) -> None:
    """A SigV4-signed invoke with the model in the path gets a msg_bdrk message, the bare model name, and the
    token-count headers."""
    raw = bedrock.messages.with_raw_response.create(model="us." + MODEL, max_tokens=1024, messages=USER)
    message = raw.parse()
    assert re.fullmatch(r"msg_bdrk_01[A-Za-z0-9]{22}", message.id) and message.model == "claude-haiku-4-5-20251001"
    assert message.usage.input_tokens == USER_TOKENS and message.stop_reason == "end_turn"
    assert re.fullmatch(r"[0-9a-f-]{36}", raw.headers["x-amzn-requestid"])
    assert raw.headers["x-amzn-bedrock-input-token-count"] == str(USER_TOKENS)
    assert raw.headers["x-amzn-bedrock-output-token-count"] == str(message.usage.output_tokens)
    recorded = server.requests[-1]
    assert recorded.path == f"/model/us.{MODEL}/invoke"
    assert recorded.headers["authorization"] == "AWS4-HMAC-SHA256 <redacted>"
    assert set(recorded.json) == {"max_tokens", "messages", "anthropic_version"}


def test_the_event_stream_decodes_in_the_sdk(server: FakeLLMServer, bedrock: anthropic.AnthropicBedrock) -> None:
    """invoke-with-response-stream is botocore's event stream: the SDK's stream helper rebuilds the message, and
    message_stop carries Bedrock's invocation metrics."""
    events = list(bedrock.messages.create(model=MODEL, max_tokens=1024, messages=USER, stream=True))
    assert server.requests[-1].path == f"/model/{MODEL}/invoke-with-response-stream"
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
    metrics = events[-1].model_extra["amazon-bedrock-invocationMetrics"]
    assert metrics["inputTokenCount"] == USER_TOKENS and metrics["outputTokenCount"] == events[-2].usage.output_tokens
    with bedrock.messages.stream(model=MODEL, max_tokens=1024, messages=USER) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert final.content[0].text == text and final.usage.output_tokens == len(text.split())


def test_event_stream_framing_is_awss() -> None:
    """Each message: total and header lengths, CRC32 of the prelude, string headers, payload, CRC32 of the rest."""
    message = encode_message({":event-type": "chunk"}, b'{"bytes":""}')
    total, headers_length, prelude_crc = struct.unpack(">III", message[:12])
    assert total == len(message) and prelude_crc == zlib.crc32(message[:8])
    assert message[12:12 + headers_length] == b"\x0b:event-type\x07\x00\x05chunk"
    assert message[12 + headers_length:-4] == b'{"bytes":""}'
    assert struct.unpack(">I", message[-4:])[0] == zlib.crc32(message[:-4])


@pytest.mark.parametrize(("fault", "error_class", "status"), [
    ("rate_limit", anthropic.RateLimitError, 429), ("server_error", anthropic.InternalServerError, 500),
    ("overloaded", anthropic.ServiceUnavailableError, 503), ("bad_request", anthropic.BadRequestError, 400)])
def test_status_faults_are_bedrocks_errors(bedrock: anthropic.AnthropicBedrock, fault: str, error_class: type,
                                           status: int) -> None:
    """Bedrock's {"message"} bodies with x-amzn-errortype: the SDK's class for the status, no Anthropic type."""
    for stream in (False, True):
        with pytest.raises(error_class) as caught:
            bedrock.messages.create(model=MODEL, max_tokens=64, messages=USER, stream=stream,
                                    extra_headers={"x-fake-fault": fault})
        error = caught.value
        assert error.status_code == status and error.type is None and error.body["message"]
        assert error.response.headers["x-amzn-errortype"].endswith(":http://internal.amazon.com/coral/com.amazon.bedrock/")


def test_mid_stream_faults(bedrock: anthropic.AnthropicBedrock) -> None:
    """stream_error is a modelStreamErrorException message after message_start; reset and invalid_json break the
    stream after it too."""
    outcomes = {}
    for fault in ("stream_error", "reset", "invalid_json"):
        received = []
        with pytest.raises(Exception) as caught:
            for event in bedrock.messages.create(model=MODEL, max_tokens=64, messages=USER, stream=True,
                                                 extra_headers={"x-fake-fault": fault}):
                received.append(event.type)
        assert received == ["message_start"], fault
        outcomes[fault] = caught.value
    assert type(outcomes["stream_error"]) is anthropic.APIStatusError
    assert outcomes["stream_error"].type == "modelStreamErrorException"
    assert isinstance(outcomes["reset"], (httpx2.ReadError, httpx2.RemoteProtocolError))
    assert isinstance(outcomes["invalid_json"], json.JSONDecodeError)


def test_api_keys_and_prompt_caching(server: FakeLLMServer) -> None:
    """A Bedrock API key (Bearer) is accepted; cache_control caches as on the first-party API, with Bedrock's
    cache headers."""
    system = [{"type": "text", "text": secrets.token_hex(8) + "x" * 4984, "cache_control": {"type": "ephemeral"}}]
    with anthropic.AnthropicBedrock(aws_region="us-east-1", api_key="bedrock-api-key-fake", base_url=server.url,
                                    max_retries=0) as keyed:
        raws = [keyed.messages.with_raw_response.create(model=MODEL, max_tokens=64, system=system, messages=USER)
                for _ in range(2)]
    assert raws[0].headers["x-amzn-bedrock-cache-write-input-token-count"] == "1250"
    assert raws[1].headers["x-amzn-bedrock-cache-read-input-token-count"] == "1250"
    assert raws[1].parse().usage.cache_read_input_tokens == 1250


def test_unsigned_requests_are_refused(server: FakeLLMServer) -> None:
    """No SigV4 signature and no API key: 403 AccessDeniedException."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 16, "messages": USER})
    conn.request("POST", f"/model/{MODEL}/invoke", body, {"content-type": "application/json"})
    response = conn.getresponse()
    assert response.status == 403 and response.getheader("x-amzn-errortype").startswith("AccessDeniedException:")
    assert "SigV4" in json.loads(response.read())["message"]
    conn.close()
