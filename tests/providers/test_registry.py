"""The provider registry: every adapter implements the one interface; instrument(), uninstrument() and
is_instrumented() dispatch on the client's SDK; importing llmmetrics imports no SDK, and works without one."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import llmmetrics
from llmmetrics.providers import ADAPTER_NAMES, SDKS, Target, adapter_for, installed, provider_for_client

from tests.support.llm import Traced, make_client

REPO = Path(__file__).resolve().parents[2]


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)


@pytest.mark.parametrize("name", sorted(SDKS))
def test_every_registered_adapter_implements_the_interface(name: str) -> None:
    """Each adapter module defines every name of the interface, with the documented kinds of value."""
    module = importlib.import_module(SDKS[name])
    missing = [n for n in ADAPTER_NAMES if not hasattr(module, n)]
    assert not missing, f"{SDKS[name]} lacks {missing}"
    assert module.NAME == name
    assert module.TARGETS and all(isinstance(t, Target) for t in module.TARGETS) and module.CHAT in module.TARGETS
    assert len({(t.operation, t.method) for t in module.TARGETS}) == len(module.TARGETS)
    if any(t.deferred for t in module.TARGETS):  # a deferred target's helper is handed over by ``defer``
        assert callable(getattr(module, "defer", None))
    assert all(isinstance(n, str) for n in module.CLIENT_COPIES + module.RESOURCE_CACHES)
    assert all(isinstance(t, type) for t in module.UNSET)
    for function in ("owns", "is_async", "client_of", "provider_label", "prepare_stream", "returned",
                     "read_response", "read_usage"):
        assert callable(getattr(module, function)), function
    for target in module.TARGETS:
        assert all(callable(getattr(cls, target.method)) for cls in target.classes())


def test_importing_llmmetrics_imports_no_sdk() -> None:
    """``import llmmetrics`` leaves every SDK unimported until instrument() needs it."""
    done = _python("import sys, llmmetrics; print(sorted(n for n in %r if n in sys.modules))" % sorted(SDKS))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_llmmetrics_works_without_any_sdk_installed(tmp_path: Path) -> None:
    """With no SDK importable: llmmetrics imports and configures, instrument() warns and patches nothing,
    and a non-client is refused at instrument() time with the supported SDKs named."""
    blocked = "; ".join(f"sys.modules[{n!r}] = None" for n in SDKS)
    code = f"""
import logging, sys
{blocked}
import llmmetrics
from prometheus_client import CollectorRegistry
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
llmmetrics.configure(registry=CollectorRegistry(), trace_file={str(tmp_path / "t.jsonl")!r})
assert llmmetrics.instrument() is None
assert not llmmetrics.is_instrumented()
llmmetrics.uninstrument()
try:
    llmmetrics.instrument(object())
except TypeError as exc:
    print("refused:", exc)
"""
    done = _python(code)
    assert done.returncode == 0, done.stderr
    names = ", ".join(SDKS)
    assert f"instrument() found none of the supported SDKs installed ({names})" in done.stderr
    assert f"refused: llmmetrics cannot instrument a builtins.object: not a client of a supported SDK ({names})" in done.stdout


def test_dispatch_is_on_the_clients_sdk(traced: Traced, llm_server: Any) -> None:
    """A supported client is instrumented by its own adapter; anything else is refused, never half-patched."""
    client = make_client(llm_server)
    adapter = adapter_for(client)
    assert adapter is not None and adapter.NAME == "openai" and adapter in installed()
    assert provider_for_client(client) == "openai_compatible"
    assert llmmetrics.instrument(client) is client and llmmetrics.is_instrumented(client)
    for thing in (object(), "openai", llmmetrics):
        with pytest.raises(TypeError, match="not a client of a supported SDK"):
            llmmetrics.instrument(thing)
        with pytest.raises(TypeError):
            provider_for_client(thing)
        assert not llmmetrics.is_instrumented(thing)
        llmmetrics.uninstrument(thing)  # a no-op, not an error


def test_instrument_without_argument_patches_every_target_of_every_installed_sdk() -> None:
    """instrument() wraps each target class of each installed SDK once; uninstrument() restores them all."""
    classes = [(cls, t.method) for sdk in installed() for t in sdk.TARGETS for cls in t.classes()]
    originals = [getattr(cls, method) for cls, method in classes]
    llmmetrics.instrument()
    try:
        assert llmmetrics.is_instrumented()
        wrapped = [getattr(cls, method) for cls, method in classes]
        assert all(w is not o for w, o in zip(wrapped, originals))
        llmmetrics.instrument()
        assert [getattr(cls, method) for cls, method in classes] == wrapped
    finally:
        llmmetrics.uninstrument()
    assert [getattr(cls, method) for cls, method in classes] == originals
    assert not llmmetrics.is_instrumented()


def test_instrument_without_argument_traces_new_clients_of_both_sdks(traced: Traced, llm_server: Any) -> None:
    """After instrument(), clients made later — openai's and anthropic's, its stream helper included — are
    traced; after uninstrument() they are not."""
    from tests.support.claude import request
    from tests.support.fake import claude_client

    llmmetrics.instrument()
    try:
        make_client(llm_server).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        claude = claude_client(llm_server)
        claude.messages.create(**request())
        with claude.messages.stream(**request()) as stream:
            stream.until_done()
    finally:
        llmmetrics.uninstrument()
    claude_client(llm_server).messages.create(**request())
    assert [(r["provider"], r["stream"]) for r in traced.records()] == [
        ("openai_compatible", False), ("anthropic", False), ("anthropic", True)]
