"""trace_run and bind_context: one parent trace per agent run, user context on every record, kept apart
across threads and asyncio tasks."""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any

import openai
import pytest

import llmmetrics

from tests.support.llm import Traced

MESSAGES = [{"role": "user", "content": "hi"}]


def test_run_record_totals_steps_and_marks_the_failing_step(traced: Traced, client: Any) -> None:
    """A run's calls share its trace id; the run record sums tokens and cost and names the failing step."""
    with llmmetrics.bind_context(user_id="u-42", request_id="api-1", feature_flags={"new_prompt": True}, tenant="acme"):
        with llmmetrics.trace_run("support-agent") as run:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            client.embeddings.create(model="text-embedding-3-small", input="x")
            with pytest.raises(openai.RateLimitError):
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                               extra_headers={"x-fake-fault": "rate_limit"})
    calls = traced.records()
    [run_record] = traced.records(kind="run")
    assert {c["trace_id"] for c in calls} == {run.trace_id}
    assert all(c["parent_span_id"] == run.span_id and c["parent_trace_id"] == run.trace_id for c in calls)
    assert all(c["run_name"] == "support-agent" for c in calls)
    assert all((c["user_id"], c["request_id"], c["feature_flags"], c["context"]) ==
               ("u-42", "api-1", {"new_prompt": True}, {"tenant": "acme"}) for c in calls)
    assert run_record["step_count"] == 3 and run_record["failed_steps"] == 1
    assert [s["call_id"] for s in run_record["steps"]] == [c["call_id"] for c in calls]
    assert run_record["input_tokens"] == sum(c["input_tokens"] or 0 for c in calls)
    assert run_record["output_tokens"] == sum(c["output_tokens"] or 0 for c in calls)
    assert run_record["cost_usd"] == pytest.approx(sum(c["cost_usd"] or 0 for c in calls), rel=1e-12)
    assert run_record["model_wait_ms"] == pytest.approx(sum(c["latency_ms"] for c in calls), rel=1e-9)
    assert run_record["latency_ms"] >= run_record["model_wait_ms"]
    assert run_record["status"] == "success"  # the agent caught the error and finished
    assert run_record["error"]["type"] == "RateLimitError"
    assert run_record["failed_call_id"] == calls[2]["call_id"]
    assert run_record["user_id"] == "u-42"


def test_run_that_raises_is_an_error_run(traced: Traced, client: Any) -> None:
    """An exception leaving the run makes the run record an error with that exception."""
    with pytest.raises(KeyError):
        with llmmetrics.trace_run("planner"):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            raise KeyError("missing tool")
    [run_record] = traced.records(kind="run")
    assert run_record["status"] == "error" and run_record["error"]["type"] == "KeyError"


def test_nested_runs_share_the_trace_and_point_at_their_parent(traced: Traced, client: Any) -> None:
    """A run inside a run keeps the outer trace id and names the outer run's span as parent."""
    with llmmetrics.trace_run("outer") as outer:
        with llmmetrics.trace_run("inner") as inner:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert inner.trace_id == outer.trace_id and inner.parent_span_id == outer.span_id
    runs = {r["run_name"]: r for r in traced.records(kind="run")}
    assert runs["inner"]["parent_span_id"] == outer.span_id and runs["outer"]["parent_span_id"] is None
    assert traced.only_record()["parent_span_id"] == inner.span_id


def test_decorators_work_for_sync_and_async_functions(traced: Traced, client: Any, async_client: Any) -> None:
    """@trace_run and @bind_context wrap sync and async functions, a fresh run per invocation."""
    @llmmetrics.trace_run("sync-agent")
    @llmmetrics.bind_context(user_id="u-sync")
    def sync_agent() -> None:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    @llmmetrics.trace_run("async-agent")
    @llmmetrics.bind_context(user_id="u-async")
    async def async_agent() -> None:
        await async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    sync_agent()
    sync_agent()
    asyncio.run(async_agent())
    runs = traced.records(kind="run")
    assert [r["run_name"] for r in runs] == ["sync-agent", "sync-agent", "async-agent"]
    assert len({r["trace_id"] for r in runs}) == 3
    assert [c["user_id"] for c in traced.records()] == ["u-sync", "u-sync", "u-async"]


async def _gather(agents: list[Any]) -> list[str]:
    return await asyncio.gather(*agents)


async def _task_group(agents: list[Any]) -> list[str]:
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(agent) for agent in agents]
    return [t.result() for t in tasks]


@pytest.mark.parametrize("spawn", [_gather, pytest.param(_task_group, marks=pytest.mark.skipif(
    sys.version_info < (3, 11), reason="asyncio.TaskGroup is new in Python 3.11"))])
def test_concurrent_asyncio_tasks_keep_their_own_runs(traced: Traced, async_client: Any, spawn: Any) -> None:
    """Tasks running interleaved (asyncio.gather, TaskGroup) each keep their own run and user."""
    async def agent(user: str) -> str:
        with llmmetrics.bind_context(user_id=user), llmmetrics.trace_run("agent") as run:
            for _ in range(3):
                await async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
                await asyncio.sleep(0)
            return run.trace_id

    async def main() -> list[str]:
        return await spawn([agent(f"u-{i}") for i in range(5)])

    trace_ids = asyncio.run(main())
    calls = traced.records()
    assert len(calls) == 15
    for i, trace_id in enumerate(trace_ids):
        mine = [c for c in calls if c["trace_id"] == trace_id]
        assert len(mine) == 3 and {c["user_id"] for c in mine} == {f"u-{i}"}


def test_threads_keep_their_own_runs(traced: Traced, client: Any) -> None:
    """Threads each keep their own run and user context."""
    results: dict[str, str] = {}

    def agent(user: str) -> None:
        with llmmetrics.bind_context(user_id=user), llmmetrics.trace_run("agent") as run:
            for _ in range(3):
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        results[user] = run.trace_id

    threads = [threading.Thread(target=agent, args=(f"u-{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    calls = traced.records()
    assert len(calls) == 18
    for user, trace_id in results.items():
        assert {c["user_id"] for c in calls if c["trace_id"] == trace_id} == {user}
        assert sum(1 for c in calls if c["trace_id"] == trace_id) == 3


def test_calls_outside_a_run_get_their_own_trace(traced: Traced, client: Any) -> None:
    """Without trace_run every call is its own trace with no parent."""
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    a, b = traced.records()
    assert a["trace_id"] != b["trace_id"] and a["parent_span_id"] is None and a["run_name"] is None
    assert a["user_id"] is None and a["feature_flags"] == {}
