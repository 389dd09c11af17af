"""The server's lifecycle and request log."""

from __future__ import annotations

import threading
import time

import openai

from llmmetrics.fake import FakeLLMServer, FaultPlan
from tests.support.fake import USER, wait_for


class TestServer:
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

    def test_the_old_import_path_is_the_same_server(self) -> None:
        """llmmetrics.fake_server, kept for one release, re-exports llmmetrics.fake's objects."""
        import llmmetrics.fake as fake
        import llmmetrics.fake_server as old

        assert old.FakeLLMServer is fake.FakeLLMServer and old.FaultPlan is fake.FaultPlan
        assert old.FAULT_NAMES == fake.FAULT_NAMES
