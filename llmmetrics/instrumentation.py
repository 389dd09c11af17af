"""Instrumentation of LLM SDK clients: every traced call becomes metrics plus one trace record.

Which SDKs, and which of their methods, is the business of the adapters in :mod:`llmmetrics.providers`
(``openai``: ``chat.completions``, ``responses`` and ``embeddings``; ``anthropic``: ``messages.create`` and
the ``messages.stream()`` helper; sync and async, streams and ``with_raw_response`` included). This module
wraps their methods the same way for all:

- ``instrument(client)`` traces one client (and the copies ``with_options`` makes of it), dispatching on
  its type; ``instrument()`` traces every client of every supported SDK that is installed, process-wide,
  by patching the SDK's resource classes. Both are idempotent, and ``uninstrument`` undoes exactly what
  ``instrument`` did.
- The object returned and the exception raised are the ones the bare client returns and raises. A stream
  is returned as the very same object; only its iterator is wrapped. A method that returns a helper sending
  its request later (a ``deferred`` target) returns that very helper; the call starts when the helper sends
  the request.
- Any failure of llmmetrics' own code on the call path — building the runtime, starting the call, looking
  up its series, handing it to the exporter, reading what the SDK returned, observing a stream — is
  counted in ``llmmetrics_instrumentation_errors_total`` (stage ``runtime``, ``call``, ``stream``;
  ``record`` for reading a response on the exporter thread) and logged at debug (a runtime that cannot be
  built: at warning, once); it never reaches the user's call, which then goes on as if it were not traced.
"""

from __future__ import annotations

import functools
import logging
import threading
import types
from collections.abc import Callable
from time import perf_counter
from typing import Any, Optional

from .call import Call, count_internal_error
from .providers import SDKS, Adapter, Target, adapter_for, imported, installed
from .runtime import Runtime, runtime
from .streams import wrap_async_stream, wrap_sync_stream

__all__ = ["instrument", "uninstrument", "is_instrumented", "call_llm_with_tracing"]

log = logging.getLogger("llmmetrics")

_MARK = "__llmmetrics_original__"
_INSTANCE_ATTR = "_llmmetrics_instrumented"
#: From an adapter's ``prepare_stream``: recognises the stream items llmmetrics asked for on top of the user's
#: request (withheld from the user), or None.
Added = Optional[Callable[[Any], bool]]

# How the call path gets its runtime: ``runtime()``, or, after that raised, a getter that also tells the next
# runtime it can get how many calls went untraced meanwhile (swapping the function keeps the usual path free
# of any check).
_get_runtime = runtime
_missed_lock = threading.Lock()
_missed = 0


def _runtime_failed() -> None:
    global _get_runtime, _missed
    with _missed_lock:
        _missed += 1
        first = _get_runtime is runtime
        _get_runtime = _runtime_after_failure
    try:
        (log.warning if first else log.debug)(
            "llmmetrics: could not build its runtime; calls run untraced until it can (counted in "
            "llmmetrics_instrumentation_errors_total{stage=\"runtime\"} once it can)", exc_info=True)
    except Exception:
        pass


def _runtime_after_failure() -> Runtime:
    global _get_runtime, _missed
    rt = runtime()
    with _missed_lock:
        missed, _missed = _missed, 0
        _get_runtime = runtime
    try:
        rt.self_metrics.instrumentation_errors.labels("runtime").inc(missed)
    except Exception:
        pass
    return rt


# -- the call path --------------------------------------------------------------------------------------------

def _begin(sdk: Adapter, target: Target, resource: Any, kwargs: dict[str, Any]
           ) -> tuple[Call | None, dict[str, Any], Added]:
    """Start tracing: the call (None if tracing is impossible), the kwargs to send, and what recognises the
    stream items llmmetrics asked for on top of the user's request."""
    try:
        rt = _get_runtime()
    except Exception:
        _runtime_failed()
        return None, kwargs, None
    try:
        call = Call(rt, sdk, target, resource, kwargs)
    except Exception:
        count_internal_error(rt, "call", "starting to trace a call")
        return None, kwargs, None
    if not call.stream:
        return call, kwargs, None
    try:
        send, added = sdk.prepare_stream(call, kwargs)
    except Exception:
        call.abandon()
        count_internal_error(rt, "call", "preparing a stream request")
        return None, kwargs, None
    return call, send, added


def _returned_failed(call: Call, result: Any, added: Added, is_async: bool) -> bool:
    """The adapter failed on what the SDK returned: counted. True if the call still finishes later: a stream
    whose request llmmetrics extended must still withhold what it added."""
    count_internal_error(call.rt, "call", "reading what the call returned")
    if added is None:
        return False
    try:
        return (wrap_async_stream if is_async else wrap_sync_stream)(result, call, _withhold_added, _withhold_added,
                                                                     added)
    except Exception:
        count_internal_error(call.rt, "stream", "wrapping a stream")
        return False


def _withhold_added(call: Call, item: Any, added: Callable[[Any], bool]) -> bool:
    return added(item)


def _traced(sdk: Adapter, target: Target, original: Any, is_async: bool) -> Any:
    """``original`` (an unbound SDK method), traced."""
    if target.deferred:
        return _traced_helper(sdk, target, original, is_async)
    if is_async:
        @functools.wraps(original)
        async def traced_async(self: Any, *args: Any, **kwargs: Any) -> Any:
            call, send, added = _begin(sdk, target, self, kwargs)
            if call is None:
                return await original(self, *args, **kwargs)
            try:
                result = await original(self, *args, **send)
            except BaseException as exc:
                call.fail(exc)
                raise
            try:
                if sdk.returned(call, result, added, True):
                    return result
            except Exception:
                if _returned_failed(call, result, added, True):
                    return result
            call._finish(perf_counter(), None)  # the adapter's part done: a success
            return result

        setattr(traced_async, _MARK, original)
        return traced_async

    @functools.wraps(original)
    def traced(self: Any, *args: Any, **kwargs: Any) -> Any:
        call, send, added = _begin(sdk, target, self, kwargs)
        if call is None:
            return original(self, *args, **kwargs)
        try:
            result = original(self, *args, **send)
        except BaseException as exc:
            call.fail(exc)
            raise
        try:
            if sdk.returned(call, result, added, False):
                return result
        except Exception:
            if _returned_failed(call, result, added, False):
                return result
        call._finish(perf_counter(), None)  # the adapter's part done: a success
        return result

    setattr(traced, _MARK, original)
    return traced


# -- methods that send their request later (deferred targets) -----------------------------------------------------

def _traced_helper(sdk: Adapter, target: Target, original: Any, is_async: bool) -> Any:
    """``original`` returns a helper that sends its request later: the same helper, its request traced.

    The method itself is sync for sync and async clients alike (it only builds the helper).
    """
    request_class = _DeferredAsyncRequest if is_async else _DeferredRequest

    @functools.wraps(original)
    def traced_helper(self: Any, *args: Any, **kwargs: Any) -> Any:
        helper = original(self, *args, **kwargs)
        try:
            sdk.defer(target, helper, functools.partial(request_class, sdk, target, self, kwargs))
        except Exception:  # the helper is left as the SDK made it: its request goes out untraced
            try:
                count_internal_error(_get_runtime(), "call", "deferring a helper's request")
            except Exception:
                pass
        return helper

    setattr(traced_helper, _MARK, original)
    return traced_helper


def _took(sdk: Adapter, call: Call, result: Any, is_async: bool) -> None:
    """What a deferred request gave, to the adapter; the call finished now unless it finishes later.

    (``traced``/``traced_async`` above do the same inline: one frame less on every plain call.)
    """
    try:
        if sdk.returned(call, result, None, is_async):
            return
    except Exception:
        if _returned_failed(call, result, None, is_async):
            return
    call._finish(perf_counter(), None)


class _DeferredRequest:
    """A helper's pending request, sent traced as a stream when the helper calls it."""

    __slots__ = ("sdk", "target", "resource", "kwargs", "request")

    def __init__(self, sdk: Adapter, target: Target, resource: Any, kwargs: dict[str, Any], request: Any) -> None:
        self.sdk = sdk
        self.target = target
        self.resource = resource
        self.kwargs = kwargs
        self.request = request

    def _begin(self) -> Call | None:
        call = _begin(self.sdk, self.target, self.resource, self.kwargs)[0]
        if call is not None:
            call.stream = True  # the helper's request always streams; it was built before: nothing to prepare
        return call

    def __call__(self) -> Any:
        call = self._begin()
        if call is None:
            return self.request()
        try:
            result = self.request()
        except BaseException as exc:
            call.fail(exc)
            raise
        _took(self.sdk, call, result, False)
        return result


class _DeferredAsyncRequest(_DeferredRequest):
    """An async helper's pending request (an awaitable), sent traced when the helper awaits it.

    The coroutine is made only when awaited: a helper never entered leaves only the SDK's own request
    un-awaited, as without llmmetrics.
    """

    __slots__ = ()

    def __await__(self) -> Any:
        return self._send().__await__()

    async def _send(self) -> Any:
        call = self._begin()
        if call is None:
            return await self.request
        try:
            result = await self.request
        except BaseException as exc:
            call.fail(exc)
            raise
        _took(self.sdk, call, result, True)
        return result


# -- instrument / uninstrument ------------------------------------------------------------------------------------

def _adapter_of(client: Any) -> Adapter:
    adapter = adapter_for(client)
    if adapter is None:
        raise TypeError(f"llmmetrics cannot instrument a {type(client).__module__}.{type(client).__qualname__}: "
                        f"not a client of a supported SDK ({', '.join(SDKS)})")
    return adapter


def _patched(cls: type, target: Target) -> bool:
    return hasattr(getattr(cls, target.method), _MARK)


def instrument(client: Any = None) -> Any:
    """Trace one client (returned, for chaining), or every client of every installed SDK when called with no
    argument.

    >>> client = instrument(openai.OpenAI())  # doctest: +SKIP
    """
    if client is None:
        adapters = installed()
        if not adapters:
            log.warning("llmmetrics: instrument() found none of the supported SDKs installed (%s)", ", ".join(SDKS))
        for sdk in adapters:
            for target in sdk.TARGETS:
                for cls, is_async in zip(target.classes(), (False, True)):
                    if not _patched(cls, target):
                        setattr(cls, target.method, _traced(sdk, target, getattr(cls, target.method), is_async))
        return None
    sdk = _adapter_of(client)
    if _instrumented(sdk, client):
        return client
    is_async = sdk.is_async(client)
    for target in sdk.TARGETS:
        resource = target.resource_of(client)
        original = getattr(type(resource), target.method)
        original = getattr(original, _MARK, original)
        for cached in sdk.RESOURCE_CACHES:  # rebuilt from our method on next access
            resource.__dict__.pop(cached, None)
        setattr(resource, target.method, types.MethodType(_traced(sdk, target, original, is_async), resource))
    for name in sdk.CLIENT_COPIES:
        setattr(client, name, _copying(getattr(type(client), name), client))
    setattr(client, _INSTANCE_ATTR, True)
    return client


def _copying(original_copy: Any, client: Any) -> Any:
    def copy(*args: Any, **kwargs: Any) -> Any:
        return instrument(original_copy(client, *args, **kwargs))
    return copy


def uninstrument(client: Any = None) -> None:
    """Undo ``instrument``: for one client, or process-wide when called with no argument."""
    if client is None:
        for sdk in imported():  # a patched SDK is an imported one
            for target in sdk.TARGETS:
                for cls in target.classes():
                    original = getattr(getattr(cls, target.method), _MARK, None)
                    if original is not None:
                        setattr(cls, target.method, original)
        return
    sdk = adapter_for(client)
    if sdk is None or not getattr(client, _INSTANCE_ATTR, False):
        return
    for target in sdk.TARGETS:
        resource = target.resource_of(client)
        resource.__dict__.pop(target.method, None)
        for cached in sdk.RESOURCE_CACHES:
            resource.__dict__.pop(cached, None)
    for name in sdk.CLIENT_COPIES:
        client.__dict__.pop(name, None)
    client.__dict__.pop(_INSTANCE_ATTR, None)


def _instrumented(sdk: Adapter, client: Any) -> bool:
    if getattr(client, _INSTANCE_ATTR, False):
        return True
    return all(_patched(type(target.resource_of(client)), target) for target in sdk.TARGETS)


def is_instrumented(client: Any = None) -> bool:
    """True if ``client`` (or, with no argument, every client of every installed SDK) is traced."""
    if client is None:
        adapters = installed()
        return bool(adapters) and all(_patched(cls, target) for sdk in adapters for target in sdk.TARGETS
                                      for cls in target.classes())
    sdk = adapter_for(client)
    return sdk is not None and _instrumented(sdk, client)


def call_llm_with_tracing(client: Any, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
    """The design article's wrapper, kept as a convenience: one traced chat call.

    Works with a bare or an instrumented client (never counted twice); returns what the client returns.

    >>> call_llm_with_tracing(client, "gpt-4o-mini", [{"role": "user", "content": "hi"}], temperature=0)  # doctest: +SKIP
    """
    sdk = _adapter_of(client)
    target = sdk.CHAT
    resource = target.resource_of(client)
    kwargs = {"model": model, target.content_arg: messages, **kwargs}
    if _instrumented(sdk, client):
        return getattr(resource, target.method)(**kwargs)
    method = getattr(type(resource), target.method)
    return _traced(sdk, target, getattr(method, _MARK, method), sdk.is_async(client))(resource, **kwargs)
