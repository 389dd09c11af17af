"""HTTP/1.1 on h11: framing, keep-alive, bad bytes on the wire, concurrency."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading

import openai
import pytest

from llmmetrics.fake import FakeLLMServer
from tests.support.fake import USER, async_client


class TestHttp:
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
