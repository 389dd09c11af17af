"""Delivery: the latency draw's pacing and the transport faults, seen on the wire and by the real client."""

from __future__ import annotations

import json
import socket
import time

import openai

from llmmetrics.fake import FakeLLMServer, FaultPlan, LatencyModel
from tests.support.fake import USER


def raw_exchange(server: FakeLLMServer, body: dict, fault: str) -> tuple[bytes, BaseException | None]:
    """Send one chat request on a fresh socket; everything received until the server ends the connection, and
    the error that ended it (None for a clean close)."""
    payload = json.dumps(body).encode()
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
               b"connection: close\r\nx-fake-fault: " + fault.encode() + b"\r\ncontent-length: "
               + str(len(payload)).encode() + b"\r\n\r\n" + payload)
    received = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(request)
        try:
            while chunk := conn.recv(65536):
                received += chunk
        except ConnectionResetError as exc:
            return received, exc
    return received, None


class TestPacing:
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


class TestTransportFaults:
    def test_reset_lands_right_after_the_first_event(self, server: FakeLLMServer) -> None:
        """On the wire a reset stream is the 200 head and exactly the first chunk, then ECONNRESET; a reset plain
        call is ECONNRESET with no byte of answer."""
        received, error = raw_exchange(server, {"model": "gpt-4o-mini", "messages": USER, "stream": True}, "reset")
        assert isinstance(error, ConnectionResetError)
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"transfer-encoding: chunked" in head.lower()
        size, _, rest = body.partition(b"\r\n")
        assert len(rest) == int(size, 16) + 2 and b'"role":"assistant"' in rest and rest.count(b"data: ") == 1
        received, error = raw_exchange(server, {"model": "gpt-4o-mini", "messages": USER}, "reset")
        assert received == b"" and isinstance(error, ConnectionResetError)

    def test_stall_holds_the_rest_of_the_stream(self, server: FakeLLMServer) -> None:
        """A stalled stream completes normally, no sooner than the stall after the request."""
        server.set_faults(FaultPlan(timeout_seconds=0.3))
        started = time.monotonic()
        received, error = raw_exchange(server, {"model": "gpt-4o-mini", "messages": USER, "stream": True}, "stall")
        assert error is None and received.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")
        assert time.monotonic() - started >= 0.3

    def test_timeout_and_stall_through_the_real_client(self, server: FakeLLMServer) -> None:
        """Both hold-ups end in a normal answer for a patient client."""
        server.set_faults(FaultPlan(timeout_seconds=0.05))
        with openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client:
            for fault in ("timeout", "stall"):
                reply = client.chat.completions.create(model="gpt-4o-mini", messages=USER,
                                                       extra_headers={"x-fake-fault": fault})
                assert reply.usage.total_tokens > 0
