"""The workload and fault model: fault plans, seeded draws and the latency model's bounds."""

from __future__ import annotations

import openai
import pytest

from llmmetrics.fake import FAULT_NAMES, FakeLLMServer, FaultPlan, LatencyModel
from tests.support.fake import USER


class TestFaultPlan:
    def test_header_none_overrides_the_plan(self, server: FakeLLMServer, client: openai.OpenAI) -> None:
        """x-fake-fault: none succeeds even when the plan fails every request."""
        server.set_faults(FaultPlan(server_error=1.0))
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="gpt-4o-mini", messages=USER)
        assert client.chat.completions.create(model="gpt-4o-mini", messages=USER,
                                              extra_headers={"x-fake-fault": "none"}).choices

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


class TestDeterminism:
    def test_seeded_servers_answer_identically(self) -> None:
        """With one seed, the same request sequence gets the same text and usage."""
        def answers() -> list[tuple[str, int]]:
            with FakeLLMServer(seed=3) as server, \
                    openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client:
                replies = [client.chat.completions.create(model="gpt-4o-mini", messages=USER) for _ in range(3)]
            return [(r.choices[0].message.content, r.usage.total_tokens) for r in replies]
        assert answers() == answers()


class TestLatencyModel:
    def test_latency_model_refuses_bad_ranges(self) -> None:
        """Ranges with low > high, negative values or a share outside 0..1 are refused."""
        with pytest.raises(ValueError, match="time_to_first_token"):
            LatencyModel(time_to_first_token=(0.5, 0.1))
        with pytest.raises(ValueError, match="slow_share"):
            LatencyModel(slow_share=2)
        assert LatencyModel.none().is_zero and not LatencyModel().is_zero
