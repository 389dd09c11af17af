"""Stream tracing, shared by every SDK: the user keeps the very stream object the SDK returned; only its
iterator is wrapped.

The wrapper — one generator frame between the SDK's iterator and the user — passes every item through and
finishes the call exactly once: when the stream is exhausted, fails, is closed (``close()``, leaving a
``with`` block) or is dropped after a ``break``. What an item tells is read in one of two ways, chosen by
the SDK adapter per stream:

- ``observe(call, item, note)``, called for each item (first token, output, usage), which may withhold an
  item llmmetrics asked for. An ``observe`` that raises is counted once and replaced by ``after_failure``
  for the rest of the stream, so every item still reaches the user.
- no observer (``observe=None``): the adapter reads the items where the SDK builds them (from the JSON it
  parsed, before its pydantic models exist; :func:`reading_client`) and the wrapper
  only passes them on. Such an adapter hands back :data:`WITHHELD` in place of an item the user must not
  see (the wrapper drops it), and marks the item that carries the first token by setting
  ``call.first_token`` to :data:`~llmmetrics.call.PENDING`: the wrapper stamps the time when that item
  reaches the user, so the time to first token means the same in both ways.

:data:`WITHHELD` is dropped in both ways. Per item the wrapper costs about what a bare generator
pass-through costs (``benchmarks/overhead.py`` measures both in the same run).

Both SDKs' streams build each item by calling ``self._client._process_response_data(data=, cast_to=,
response=)`` on the JSON they parsed (:func:`builds_items_through_client` checks a stream class's code for
it): :func:`reading_client` makes the client one stream sees, whose builder is the adapter's reader.

The streams of Stainless-generated SDKs (openai, anthropic) keep their iterator in ``_iterator``
(:func:`wrappable` checks a stream class for it, before a request is changed in a way only the wrapper can
hide); a stream without one is returned untouched (``wrap_*`` count it and return False) and the call
finishes at once, without its output.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from time import perf_counter
from typing import TYPE_CHECKING, Any, Optional

from .call import PENDING, count_internal_error

if TYPE_CHECKING:
    from .call import Call

__all__ = ["BuildItem", "Observe", "WITHHELD", "builds_items_through_client", "field", "reading_client", "wrappable",
           "wrap_sync_stream", "wrap_async_stream"]

_ITERATOR = "_iterator"


class _Withheld:
    __slots__ = ()

    def __repr__(self) -> str:
        return "WITHHELD"


#: What an adapter that reads items where the SDK builds them returns instead of an item llmmetrics asked for
#: and the user must not see; the wrapper drops it.
WITHHELD: Any = _Withheld()


def wrappable(stream_class: type) -> bool:
    """True if the class's ``__init__`` sets the iterator this module wraps (read from its code, not its source)."""
    code = getattr(getattr(stream_class, "__init__", None), "__code__", None)
    return code is not None and _ITERATOR in code.co_names


_BUILD_ARGS = ("data", "cast_to", "response")


def builds_items_through_client(stream_class: type) -> bool:
    """True if ``stream_class`` builds its items as :func:`reading_client` expects (read from its code): it keeps
    ``_client``, and ``__stream__`` looks up ``_client._process_response_data`` and calls it with exactly
    the keyword arguments ``data``, ``cast_to``, ``response``."""
    init = getattr(getattr(stream_class, "__init__", None), "__code__", None)
    code = getattr(getattr(stream_class, "__stream__", None), "__code__", None)
    if init is None or code is None or "_client" not in init.co_names:
        return False
    calls = [c for c in code.co_consts if type(c) is tuple and "cast_to" in c]  # keyword-name tuples
    return ("_client" in code.co_names and "_process_response_data" in code.co_names and bool(calls)
            and all(c == _BUILD_ARGS for c in calls))


#: ``parse(*, data, cast_to, response)``: what a stream calls to build each item from its parsed JSON.
BuildItem = Callable[..., Any]


class _StreamClient:
    """What one stream sees as its client: the client itself, but with llmmetrics' item builder."""

    __slots__ = ("_process_response_data", "_llmmetrics_client")

    def __init__(self, client: Any, build: BuildItem) -> None:
        self._llmmetrics_client = client
        self._process_response_data = build

    def __getattr__(self, name: str) -> Any:  # anything else a stream may ask of its client
        return getattr(self._llmmetrics_client, name)


def reading_client(stream: Any, make: Callable[[BuildItem, Any, Any], BuildItem], call: Any,
                   note: Any) -> _StreamClient | None:
    """What ``stream`` (not iterated yet) should have as its ``_client`` to build its items with
    ``make(original, call, note)``, which sees each item's parsed JSON and returns what ``original`` returns
    for it, or :data:`WITHHELD`. None if the stream has no item builder to take over; only
    where the stream's class :func:`builds_items_through_client`. Building it changes nothing: the caller
    assigns it (before the iterator exists for an SDK whose ``_iterator`` is made from a copy of the stream on
    first use, as anthropic's is; after wrapping otherwise)."""
    client = getattr(stream, "_client", None)
    build = getattr(client, "_process_response_data", None)
    if not callable(build):
        return None
    return _StreamClient(client, make(build, call, note))


def field(obj: Any, name: str) -> Any:
    """``obj.name`` of an SDK model, or ``obj[name]`` of the parsed JSON it is built from (what a stream's reader
    keeps, :func:`reading_client`; openai 1.66 also keeps some usage details as plain dicts); None if absent."""
    if obj is None:
        return None
    if type(obj) is dict:
        return obj.get(name)
    return getattr(obj, name, None)


#: ``observe(call, item, note)`` notes what one streamed item tells; True: withhold the item from the user.
#: An SDK adapter passes two to ``wrap_*`` with a ``note`` of its own for them (what to withhold, say):
#: ``observe``, and ``after_failure``, which takes over once ``observe`` raised (it observes nothing, only
#: decides withholding). Plain functions, not closures: nothing is built per stream. ``observe=None``: the
#: adapter reads the items elsewhere (see the module docstring); ``after_failure`` and ``note`` are unused.
Observe = Callable[["Call", Any, Any], bool]


def wrap_sync_stream(stream: Any, call: Call, observe: Optional[Observe], after_failure: Optional[Observe],
                     note: Any) -> bool:
    """Trace ``stream`` in place; False (and nothing changed) if it has no iterator to wrap."""
    inner: Iterator[Any] | None = getattr(stream, _ITERATOR, None)
    if inner is None:
        count_internal_error(call.rt, "stream", "finding the stream's iterator")
        return False
    stream_ref, original_close = _closing(stream)

    def close() -> None:
        try:
            closing = stream_ref()
            if closing is not None:
                original_close(closing)
        finally:
            _end(call, None)

    setattr(stream, _ITERATOR, _traced(inner, call, observe, after_failure, note))
    stream.close = close
    return True


def wrap_async_stream(stream: Any, call: Call, observe: Optional[Observe], after_failure: Optional[Observe],
                      note: Any) -> bool:
    """Trace an async ``stream`` in place; False (and nothing changed) if it has no iterator to wrap."""
    inner: AsyncIterator[Any] | None = getattr(stream, _ITERATOR, None)
    if inner is None:
        count_internal_error(call.rt, "stream", "finding the stream's iterator")
        return False
    stream_ref, original_close = _closing(stream)

    async def close() -> None:
        try:
            closing = stream_ref()
            if closing is not None:
                await original_close(closing)
        finally:
            _end(call, None)

    setattr(stream, _ITERATOR, _atraced(inner, call, observe, after_failure, note))
    stream.close = close
    return True


# The wrappers. What they touch per item is in their own frame (arguments and the two markers as locals, no
# closure cells or globals), and the call only until the first token is stamped: in a real client the SDK's
# own work between two items evicts whatever else llmmetrics would touch, and each such object costs a cache
# miss per item.

def _traced(inner: Iterator[Any], call: Call, observe: Optional[Observe], after_failure: Optional[Observe],
            note: Any, withheld: Any = WITHHELD, pending: Any = PENDING) -> Iterator[Any]:
    stamping = observe is None  # until the first token reaches the user
    try:
        for item in inner:
            if item is withheld:
                continue
            if observe is not None:
                try:
                    if observe(call, item, note):
                        continue
                except Exception:
                    observe = after_failure
                    count_internal_error(call.rt, "stream", "reading a stream item")
                    if _safe(observe, call, item, note):
                        continue
            elif stamping and call.first_token is pending:
                call.first_token = perf_counter()
                stamping = False
            yield item
    except GeneratorExit:  # closed or dropped early: a partial stream, not an error
        _end(call, None)
        raise
    except BaseException as exc:
        _end(call, exc)
        raise
    _end(call, None)


async def _atraced(inner: AsyncIterator[Any], call: Call, observe: Optional[Observe],
                   after_failure: Optional[Observe], note: Any, withheld: Any = WITHHELD,
                   pending: Any = PENDING) -> AsyncIterator[Any]:
    stamping = observe is None
    try:
        async for item in inner:
            if item is withheld:
                continue
            if observe is not None:
                try:
                    if observe(call, item, note):
                        continue
                except Exception:
                    observe = after_failure
                    count_internal_error(call.rt, "stream", "reading a stream item")
                    if _safe(observe, call, item, note):
                        continue
            elif stamping and call.first_token is pending:
                call.first_token = perf_counter()
                stamping = False
            yield item
    except GeneratorExit:
        _end(call, None)
        raise
    except BaseException as exc:
        _end(call, exc)
        raise
    _end(call, None)


def _closing(stream: Any) -> tuple[Callable[[], Any], Callable[[Any], Any]]:
    """What the traced ``close()`` calls: the stream class's own ``close``, and the stream through a weak
    reference. The stream keeps the traced ``close``; a strong reference back would make every traced stream
    garbage only the cycle collector frees (its HTTP response, its items), where a bare one is freed as soon as
    it is dropped."""
    try:
        stream_ref: Callable[[], Any] = weakref.ref(stream)
    except TypeError:  # a stream class without weak references: freed by the cycle collector, then
        stream_ref = lambda: stream  # noqa: E731
    return stream_ref, type(stream).close


def _safe(after_failure: Optional[Observe], call: Call, item: Any, note: Any) -> bool:
    try:
        return after_failure(call, item, note)  # type: ignore[misc]
    except Exception:  # then withhold nothing more: the user sees the stream as the SDK sent it
        return False


def _end(call: Call, exc: BaseException | None) -> None:
    """Finish the call once (``Call._finish`` never raises); a failure the stream reported in-band counts."""
    if exc is None and call.stream_error is not None:
        exc = call.stream_error
    if exc is None:
        call.succeed()
    else:
        call.fail(exc)
