"""Fault injection shared by the adapters' tests (tests/core/test_faults.py for openai,
tests/providers/test_anthropic_faults.py for anthropic): the faults every SDK's call path has in common, and
the check that a call made while one internal step raises is exactly the bare client's call."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest

import llmmetrics

from tests.support.llm import Traced

__all__ = ["Fault", "SHARED_FAULTS", "bug", "check_under_fault", "check_without_faults", "raised"]

runtime_module = importlib.import_module("llmmetrics.runtime")  # the attribute llmmetrics.runtime is the function


def bug(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("bug in llmmetrics")


class Unappendable(list):  # type: ignore[type-arg]
    """A list whose ``append`` is a bug in llmmetrics: what a stream reader keeps its findings in, broken."""

    def append(self, item: Any) -> None:
        bug()


def unkeeping(reader: Callable[..., Any], *lists: str) -> Callable[..., Any]:
    """An adapter's stream-reader factory ``reader`` with the call's ``lists`` (attribute names of the lists
    it appends to) broken: reading each item raises inside llmmetrics."""
    def broken(build: Any, call: Any, note: Any) -> Any:
        for name in lists:
            setattr(call, name, Unappendable())
        return reader(build, call, note)
    return broken


class Fault(NamedTuple):
    stage: str  # the instrumentation_errors stage it is counted under
    inject: Callable[[pytest.MonkeyPatch, Traced], None]
    hits: Callable[[Any], bool]  # whether the scenario reaches the faulty step


#: Steps of the shared call path, reached by every call of every SDK.
SHARED_FAULTS = {
    "runtime-build": Fault("runtime", lambda m, t: (m.setattr(runtime_module, "_runtime", None),
                                                    m.setattr(runtime_module, "Runtime", bug)), lambda s: True),
    "series-lookup": Fault("call", lambda m, t: m.setattr(t.runtime.metrics, "series_for", bug), lambda s: True),
    "exporter-submit": Fault("call", lambda m, t: m.setattr(t.runtime, "submit", bug), lambda s: True),
}


def raised(exc: BaseException) -> tuple[Any, ...]:
    """An exception as the user sees it."""
    return type(exc), str(exc), getattr(exc, "status_code", None), getattr(exc, "body", None)


def check_under_fault(traced: Traced, monkeypatch: pytest.MonkeyPatch, fault: Fault, case: Any,
                      outcome: Callable[[Any, Any], Any], make_client: Callable[[bool], Any], plain_case: Any) -> None:
    """``case`` through a bare and an instrumented client, the latter with ``fault`` injected: the same
    ``outcome`` (("returned", seen) or ("raised", ...)), and the failure counted once if the case reaches it.

    ``plain_case`` (of the same sync/async kind) is run afterwards when the fault is the runtime's: its failures
    are counted by the next runtime the call path can get.
    """
    bare = make_client(case.is_async)
    ours = llmmetrics.instrument(make_client(case.is_async))
    expected = outcome(case, bare)
    with monkeypatch.context() as m:
        fault.inject(m, traced)
        assert outcome(case, ours) == expected
        assert traced.runtime.flush(10)  # the exporter's part runs under the fault too
    assert expected[0] == ("raised" if case.fails else "returned")
    if fault.stage == "runtime":
        outcome(plain_case, ours)
    counted = traced.value("llmmetrics_instrumentation_errors_total", stage=fault.stage) or 0
    assert counted == (1 if fault.hits(case) else 0)


def check_without_faults(traced: Traced, case: Any, outcome: Callable[[Any, Any], Any],
                         make_client: Callable[[bool], Any]) -> dict[str, Any]:
    """``case`` fault-free: what the bare client gives, one record with the right status, nothing counted.
    Returns the record."""
    assert outcome(case, llmmetrics.instrument(make_client(case.is_async))) == outcome(case, make_client(case.is_async))
    record = traced.only_record()
    assert record["status"] == ("error" if case.fails else "success")
    for stage in ("runtime", "call", "stream", "record"):
        assert not traced.value("llmmetrics_instrumentation_errors_total", stage=stage)
    return record
