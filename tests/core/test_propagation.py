"""trace_run and bind_context follow the user's work where users put it: asyncio tasks, thread pools (with
and without propagation), generator-based agent loops; and a call never joins a run that has ended."""

from __future__ import annotations

import asyncio
import contextvars
import doctest
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import llmmetrics
import llmmetrics.context
from tests.support.llm import Traced

MESSAGES = [{"role": "user", "content": "hi"}]


def _chat(client: Any) -> Any:
    return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)


def _in_run(calls: list[dict[str, Any]], run: Any) -> list[dict[str, Any]]:
    return [c for c in calls if c["trace_id"] == run.trace_id and c["parent_span_id"] == run.span_id]


def _detached(traced: Traced) -> float:
    return traced.value("llmmetrics_detached_calls_total") or 0.0


# -- asyncio ------------------------------------------------------------------------------------------------------

@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.TaskGroup is new in Python 3.11")
def test_gather_and_taskgroup_carry_the_run_and_context_into_every_task(traced: Traced, async_client: Any) -> None:
    """Calls made concurrently by asyncio.gather and by TaskGroup tasks are steps of the enclosing run and
    carry its bound context."""
    async def agent() -> Any:
        with llmmetrics.bind_context(user_id="u-async"), llmmetrics.trace_run("fan-out") as run:
            await asyncio.gather(*(async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
                                   for _ in range(3)))
            async with asyncio.TaskGroup() as group:
                for _ in range(3):
                    group.create_task(async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES))
        return run

    run = asyncio.run(agent())
    calls = traced.records()
    assert len(_in_run(calls, run)) == len(calls) == 6
    assert {c["user_id"] for c in calls} == {"u-async"}
    [record] = traced.records(kind="run")
    assert record["step_count"] == 6 and sorted(s["call_id"] for s in record["steps"]) == sorted(c["call_id"] for c in calls)


def test_to_thread_carries_the_run_and_run_in_executor_needs_propagate(traced: Traced, client: Any) -> None:
    """asyncio.to_thread copies the context into its thread; loop.run_in_executor does not, unless the
    function is wrapped in llmmetrics.propagate."""
    async def agent() -> tuple[Any, list[str]]:
        loop = asyncio.get_running_loop()
        with llmmetrics.trace_run("blocking-client") as run:
            ids = [(await asyncio.to_thread(_chat, client)).id,
                   (await loop.run_in_executor(None, _chat, client)).id,
                   (await loop.run_in_executor(None, llmmetrics.propagate(_chat), client)).id]
        return run, ids

    run, _ = asyncio.run(agent())
    to_thread, executor, propagated = traced.records()
    assert to_thread["parent_span_id"] == propagated["parent_span_id"] == run.span_id
    assert executor["parent_span_id"] is None and executor["trace_id"] != run.trace_id
    assert traced.records(kind="run")[0]["step_count"] == 2


# -- thread pools ---------------------------------------------------------------------------------------------------

def test_a_pool_without_propagation_makes_calls_of_no_run(traced: Traced, client: Any) -> None:
    """A thread pool starts its threads with a context of their own: a call made there is its own trace,
    with no parent, no run and no bound context; it is not attached to any run, and the run's record lists
    only the calls made in the run's context."""
    with ThreadPoolExecutor(2) as pool:
        with llmmetrics.bind_context(user_id="u-1"), llmmetrics.trace_run("agent") as run:
            _chat(client)
            pool.submit(_chat, client).result()
            pool.submit(_chat, client).result()
    here, *pooled = traced.records()
    assert here["parent_span_id"] == run.span_id and here["user_id"] == "u-1"
    for call in pooled:
        assert (call["parent_span_id"], call["run_name"], call["user_id"]) == (None, None, None)
        assert call["trace_id"] not in (run.trace_id, here["trace_id"])
    assert len({c["trace_id"] for c in pooled}) == 2
    assert traced.records(kind="run")[0]["step_count"] == 1
    assert _detached(traced) == 0  # nothing to detach: they never saw the run


def test_copy_context_run_and_propagate_carry_the_run_into_a_pool(traced: Traced, client: Any) -> None:
    """Submitting contextvars.copy_context().run, or llmmetrics.propagate(fn) — one wrapped function mapped
    over the pool concurrently — makes the pooled calls steps of the run, with its bound context."""
    with ThreadPoolExecutor(4) as pool:
        with llmmetrics.bind_context(user_id="u-2"), llmmetrics.trace_run("agent") as run:
            pool.submit(contextvars.copy_context().run, _chat, client).result()
            list(pool.map(llmmetrics.propagate(_chat), [client] * 6))
    calls = traced.records()
    assert len(_in_run(calls, run)) == len(calls) == 7
    assert {c["user_id"] for c in calls} == {"u-2"}
    assert traced.records(kind="run")[0]["step_count"] == 7


def test_a_call_that_ends_after_its_run_is_detached_and_counted(traced: Traced, client: Any) -> None:
    """A call that ends after its run ended — in a context captured during the run and used later, or in
    a future nobody waited for — is recorded as its own trace (keeping its bound context), counted in
    llmmetrics_detached_calls_total, and absent from the run record, never attached to the ended run."""
    release = threading.Event()

    def later() -> Any:
        assert release.wait(10)
        return _chat(client)

    with ThreadPoolExecutor(2) as pool:
        with llmmetrics.bind_context(user_id="u-3"), llmmetrics.trace_run("agent") as run:
            captured = contextvars.copy_context()
            _chat(client)
            unawaited = pool.submit(llmmetrics.propagate(later))
        release.set()
        unawaited.result(timeout=20)
        pool.submit(captured.run, _chat, client).result(timeout=20)
    inside, *after = traced.records()
    assert inside["parent_span_id"] == run.span_id
    assert len(after) == 2
    for call in after:
        assert call["trace_id"] != run.trace_id and (call["parent_span_id"], call["run_name"]) == (None, None)
        assert call["user_id"] == "u-3"
    assert traced.records(kind="run")[0]["step_count"] == 1
    assert _detached(traced) == 2


def test_a_run_begun_in_an_ended_runs_context_starts_its_own_trace(traced: Traced, client: Any) -> None:
    """A trace_run entered in a context whose run has ended is not that run's child: it and its calls make
    a trace of their own."""
    with llmmetrics.trace_run("agent") as ended:
        captured = contextvars.copy_context()

    def subtask() -> Any:
        with llmmetrics.trace_run("subtask") as run:
            _chat(client)
        return run

    sub = captured.run(subtask)
    assert sub.trace_id != ended.trace_id and sub.parent_span_id is None
    [call] = traced.records()
    assert (call["trace_id"], call["parent_span_id"]) == (sub.trace_id, sub.span_id)
    assert _detached(traced) == 0


# -- generators -----------------------------------------------------------------------------------------------------

def test_a_decorated_generator_agent_keeps_its_run_across_yields(traced: Traced, client: Any) -> None:
    """@trace_run on a generator: the run spans the whole iteration and holds each step's call; the
    consumer's own calls between steps are not part of it."""
    @llmmetrics.trace_run("agent-loop")
    @llmmetrics.bind_context(user_id="u-gen")
    def agent(steps: int) -> Any:
        for _ in range(steps):
            yield _chat(client)

    for _ in agent(3):
        client.embeddings.create(model="text-embedding-3-small", input="between steps")
    calls = traced.records()
    [run] = traced.records(kind="run")
    steps = [c for c in calls if c["operation"] == "chat"]
    consumer = [c for c in calls if c["operation"] == "embeddings"]
    assert run["step_count"] == 3 and [s["call_id"] for s in run["steps"]] == [c["call_id"] for c in steps]
    assert {(c["trace_id"], c["parent_span_id"], c["user_id"]) for c in steps} == {(run["trace_id"], run["span_id"], "u-gen")}
    assert all(c["parent_span_id"] is None and c["user_id"] is None for c in consumer)
    assert run["status"] == "success"


def test_a_decorated_generator_resumed_from_fresh_contexts_keeps_its_run(traced: Traced, client: Any) -> None:
    """A consumer that resumes each step in a fresh copy of its context, from a thread pool (as Starlette
    iterates a sync generator for a StreamingResponse), still gets every step into the one run."""
    @llmmetrics.trace_run("streamed-agent")
    def agent() -> Any:
        for _ in range(3):
            yield _chat(client).id

    gen = agent()
    with ThreadPoolExecutor(2) as pool:
        while pool.submit(contextvars.copy_context().run, next, gen, None).result() is not None:
            pass
    [run] = traced.records(kind="run")
    assert run["step_count"] == 3
    assert {c["trace_id"] for c in traced.records()} == {run["trace_id"]}


def test_a_generator_agent_stopped_early_or_failing_ends_its_run(traced: Traced, client: Any) -> None:
    """Breaking out of the loop ends the run as a success with the steps done (decorated, or a ``with``
    block held across the yields); an exception raised inside the generator ends it as an error and
    reaches the consumer unchanged."""
    @llmmetrics.trace_run("agent")
    def agent(fail_at: int | None) -> Any:
        for i in range(5):
            if i == fail_at:
                raise LookupError("no such tool")
            yield _chat(client)

    def held_across_yields() -> Any:
        with llmmetrics.trace_run("agent"):
            for _ in range(5):
                yield _chat(client)

    for start in (lambda: agent(None), held_across_yields):
        for i, _ in enumerate(start()):  # the loop holds the only reference: break closes the generator
            if i == 1:
                break
    with pytest.raises(LookupError, match="no such tool"):
        list(agent(1))
    stopped, stopped_with, failed = traced.records(kind="run")
    assert (stopped["status"], stopped["step_count"]) == ("success", 2)
    assert (stopped_with["status"], stopped_with["step_count"]) == ("success", 2)
    assert (failed["status"], failed["step_count"], failed["error"]["type"]) == ("error", 1, "LookupError")


def test_a_decorated_async_generator_keeps_its_run_across_tasks(traced: Traced, async_client: Any) -> None:
    """@trace_run on an async generator: every step's call is in the run, even with each step awaited
    from a task of its own, and the consumer's calls between steps are not."""
    @llmmetrics.trace_run("async-agent-loop")
    async def agent() -> Any:
        for _ in range(3):
            yield await async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    async def consume() -> None:
        gen = agent()
        while True:
            try:
                await asyncio.create_task(gen.__anext__())
            except StopAsyncIteration:
                return
            await async_client.embeddings.create(model="text-embedding-3-small", input="between steps")

    asyncio.run(consume())
    [run] = traced.records(kind="run")
    calls = traced.records()
    assert run["step_count"] == 3
    assert {c["operation"] for c in calls if c["parent_span_id"] == run["span_id"]} == {"chat"}
    assert all(c["parent_span_id"] is None for c in calls if c["operation"] == "embeddings")


def test_a_with_block_across_yields_resumed_elsewhere_never_raises_or_misattaches(traced: Traced, client: Any) -> None:
    """A ``with trace_run`` held across a generator's yields, resumed from fresh contexts, follows only the
    step it began in (the decorator is the way, see above); leaving it in another context raises nothing,
    and no call lands in a run other than its own."""
    def agent() -> Any:
        with llmmetrics.trace_run("held-across-yields"):
            for _ in range(3):
                yield _chat(client).id

    gen = agent()
    with llmmetrics.trace_run("consumer") as consumer:
        while contextvars.copy_context().run(next, gen, None) is not None:
            pass
    runs = {r["run_name"]: r for r in traced.records(kind="run")}
    first, *rest = traced.records()
    assert runs["held-across-yields"]["step_count"] == 1
    assert first["run_name"] == "held-across-yields" and runs["consumer"]["step_count"] == 2
    assert all(c["parent_span_id"] == consumer.span_id for c in rest)  # the consumer's context, where they ran
    assert llmmetrics.context.current_run() is None


def test_the_context_module_examples_run(traced: Traced) -> None:
    """The examples in llmmetrics.context's docstrings (propagate into a pool among them) run as written."""
    result = doctest.testmod(llmmetrics.context, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 4 and result.failed == 0
