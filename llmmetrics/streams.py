"""Stream tracing, shared by every SDK: the user keeps the very stream object the SDK returned; only its
iterator is wrapped.

The wrapper passes every item through, hands it to the SDK's ``observe`` (which notes the first token,
output and usage, and may withhold an item llmmetrics asked for), and finishes the call
exactly once: when the stream is exhausted, fails, is closed (``close()``, leaving a ``with`` block) or is
dropped after a ``break``. An ``observe`` that raises is counted once and replaced by ``after_failure``
for the rest of the stream, so every item still reaches the user.

The streams of Stainless-generated SDKs (openai, anthropic) keep their iterator in ``_iterator``
(:func:`wrappable` checks a stream class for it, before a request is changed in a way only the wrapper can
hide); a stream without one is returned untouched (``wrap_*`` count it and return False) and the call
finishes at once, without its output.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

from .call import count_internal_error

if TYPE_CHECKING:
    from .call import Call

__all__ = ["Observe", "wrappable", "wrap_sync_stream", "wrap_async_stream"]

_ITERATOR = "_iterator"


def wrappable(stream_class: type) -> bool:
    """True if the class's ``__init__`` sets the iterator this module wraps (read from its code, not its source)."""
    code = getattr(getattr(stream_class, "__init__", None), "__code__", None)
    return code is not None and _ITERATOR in code.co_names


#: ``observe(call, item, note)`` notes what one streamed item tells; True: withhold the item from the user.
#: An SDK adapter passes two to ``wrap_*`` with a ``note`` of its own for them (what to withhold, say):
#: ``observe``, and ``after_failure``, which takes over once ``observe`` raised (it observes nothing, only
#: decides withholding). Plain functions, not closures: nothing is built per stream.
Observe = Callable[["Call", Any, Any], bool]


def wrap_sync_stream(stream: Any, call: Call, observe: Observe, after_failure: Observe, note: Any) -> bool:
    """Trace ``stream`` in place; False (and nothing changed) if it has no iterator to wrap."""
    inner: Iterator[Any] | None = getattr(stream, _ITERATOR, None)
    if inner is None:
        count_internal_error(call.rt, "stream", "finding the stream's iterator")
        return False

    def traced() -> Iterator[Any]:
        nonlocal observe
        try:
            for item in inner:
                try:
                    if observe(call, item, note):
                        continue
                except Exception:
                    observe = after_failure
                    count_internal_error(call.rt, "stream", "reading a stream item")
                    if _safe(observe, call, item, note):
                        continue
                yield item
        except GeneratorExit:  # closed or dropped early: a partial stream, not an error
            _end(call, None)
            raise
        except BaseException as exc:
            _end(call, exc)
            raise
        _end(call, None)

    original_close = stream.close

    def close() -> None:
        try:
            original_close()
        finally:
            _end(call, None)

    setattr(stream, _ITERATOR, traced())
    stream.close = close
    return True


def wrap_async_stream(stream: Any, call: Call, observe: Observe, after_failure: Observe, note: Any) -> bool:
    """Trace an async ``stream`` in place; False (and nothing changed) if it has no iterator to wrap."""
    inner: AsyncIterator[Any] | None = getattr(stream, _ITERATOR, None)
    if inner is None:
        count_internal_error(call.rt, "stream", "finding the stream's iterator")
        return False

    async def traced() -> AsyncIterator[Any]:
        nonlocal observe
        try:
            async for item in inner:
                try:
                    if observe(call, item, note):
                        continue
                except Exception:
                    observe = after_failure
                    count_internal_error(call.rt, "stream", "reading a stream item")
                    if _safe(observe, call, item, note):
                        continue
                yield item
        except GeneratorExit:
            _end(call, None)
            raise
        except BaseException as exc:
            _end(call, exc)
            raise
        _end(call, None)

    original_close = stream.close

    async def close() -> None:
        try:
            await original_close()
        finally:
            _end(call, None)

    setattr(stream, _ITERATOR, traced())
    stream.close = close
    return True


def _safe(after_failure: Observe, call: Call, item: Any, note: Any) -> bool:
    try:
        return after_failure(call, item, note)
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
