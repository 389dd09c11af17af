"""The provider SDKs llmmetrics traces: one adapter module per SDK, and the registry that finds them.

What every SDK shares — the :class:`~llmmetrics.call.Call` in flight, its timing, ids, metrics, the hand-off
to the exporter, the record, the stream wrapper that finishes a call exactly once, ``instrument()`` and
``uninstrument()`` — lives outside this package. An adapter module, ``llmmetrics/providers/<sdk>.py``, says
only what differs from one SDK to the next. It is a plain module that defines:

``NAME: str``
    The SDK's import name (``"openai"``); also its key in :data:`SDKS`.
``TARGETS: tuple[Target, ...]``
    The methods to trace (:class:`Target`: operation label, resource classes, attribute path from a client,
    the argument recorded as the prompt, and whether the method defers its request, see ``defer``). ``CHAT``
    names the one ``call_llm_with_tracing`` uses.
``CLIENT_COPIES`` / ``RESOURCE_CACHES: tuple[str, ...]``
    A client's methods that return a copy of it (kept instrumented), and a resource's cached wrappers of
    its methods (``with_raw_response``) to rebuild when one client is (un)instrumented.
``UNSET: tuple[type, ...]``
    The SDK's "argument not given" sentinel types, left out of the recorded kwargs.
``owns(client) -> bool``, ``is_async(client) -> bool``
    Recognise the SDK's clients, sync and async.
``client_of(resource)``, ``provider_label(client) -> str``
    The client a resource belongs to, and the low-cardinality ``provider`` label for it.
``prepare_stream(call, kwargs) -> (kwargs_to_send, added)``  *(call path)*
    For ``stream=True``: the request to send, and, if it asks for more than the user did (e.g. usage),
    ``added(item) -> bool`` recognising the extra items, which the user must never see (else None).
``returned(call, result, added, is_async) -> bool``  *(call path)*
    Take what the SDK returned: unwrap a raw response, note the response for the exporter, or wrap a
    stream with :func:`llmmetrics.streams.wrap_sync_stream` / ``wrap_async_stream`` and the functions that
    read the SDK's stream events (first token, text, usage, finish reason). True if the call finishes later
    (a stream) or has finished already; False to finish it now as a success. The adapter also counts, in
    ``call.chunk_count`` by the time ``read_response`` has run, the stream items that carried output (the
    first of which set ``call.first_token``): the time per output chunk is derived from that count when the
    call completes — counted per item, or from what the observer kept anyway (openai: its text pieces).
``defer(target, helper, trace)``  *(call path; only for a target made with* ``deferred=True`` *)*
    Some SDK methods return a helper that sends its request later (anthropic's ``messages.stream()``
    returns a ``MessageStreamManager`` whose ``with`` block sends it). ``defer`` swaps the helper's pending
    request for ``trace(request)``, which sends it traced as a stream when the helper does, and gives the
    helper what the request gave (for an async client, ``request`` and what ``trace`` returns are awaitables).
    Until then no call exists: a helper never entered is never counted.
``read_response(call)``, ``read_usage(operation, usage) -> (input, output, cached input, reasoning, cache
writes, 1-hour cache writes)``
    *(exporter thread)* Fill the record's fields from ``call.response`` / ``call.http_response``, and the
    token counts from the usage the SDK reported (None for a count the SDK does not report). ``input``
    counts every input token, cache reads and writes included; ``output`` includes reasoning.

The call-path functions may raise: the shared code counts the failure
(``llmmetrics_instrumentation_errors_total``) and the user's call goes on as if it were not traced — a
stream whose request was extended still has its ``added`` items withheld.
A new SDK is one such module and one line in :data:`SDKS`; importing llmmetrics imports none of them,
and ``instrument()`` with no argument loads the adapters of the SDKs that are installed.

What the shared code does for every SDK: time and count the call, join the caller's trace
(:mod:`llmmetrics.tracecontext`), derive the time per output chunk of a stream, price it (cache reads and
writes at their own rates), build the record.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType
from typing import Any

from .hosts import provider_for_url

#: An adapter is a module defining the names listed above.
Adapter = ModuleType
ADAPTER_NAMES = ("NAME", "TARGETS", "CHAT", "CLIENT_COPIES", "RESOURCE_CACHES", "UNSET", "owns", "is_async",
                 "client_of", "provider_label", "prepare_stream", "returned", "read_response", "read_usage")

__all__ = ["SDKS", "ADAPTER_NAMES", "Adapter", "Target", "adapter_for", "imported", "installed", "provider_for_client",
           "provider_for_url"]

#: SDK import name → its adapter module. Order matters only for a client two SDKs would both claim.
SDKS: dict[str, str] = {
    "openai": "llmmetrics.providers.openai",
    "anthropic": "llmmetrics.providers.anthropic",
}


class Target:
    """One traced method: ``<client>.<path>.<method>``, defined on ``module.sync_class``/``async_class``.

    ``deferred``: the method returns a helper that sends the request (always a stream) later; the adapter's
    ``defer`` hands the request to the shared code.
    """

    __slots__ = ("operation", "module", "sync_class", "async_class", "path", "content_arg", "method", "not_kwargs",
                 "deferred")

    def __init__(self, operation: str, module: str, sync_class: str, async_class: str, path: tuple[str, ...],
                 content_arg: str, method: str = "create", *, deferred: bool = False) -> None:
        self.operation = operation  # the ``operation`` label: "chat", "responses", "embeddings", ...
        self.module = module
        self.sync_class = sync_class
        self.async_class = async_class
        self.path = path
        self.content_arg = content_arg  # the argument recorded as the record's ``messages``
        self.method = method
        self.deferred = deferred
        #: arguments the record keeps apart from ``kwargs``
        self.not_kwargs = frozenset(("model", "stream", content_arg))

    def __repr__(self) -> str:
        return f"Target({self.operation!r}, {self.module}.{self.sync_class}.{self.method})"

    def resource_of(self, client: Any) -> Any:
        resource = client
        for attr in self.path:
            resource = getattr(resource, attr)
        return resource

    def classes(self) -> tuple[type, type]:
        module = importlib.import_module(self.module)
        return getattr(module, self.sync_class), getattr(module, self.async_class)


def _adapter(name: str) -> Adapter:
    return importlib.import_module(SDKS[name])


def installed() -> list[Adapter]:
    """The adapters of every registered SDK that is installed (importing them, and so their SDKs)."""
    return [_adapter(name) for name in SDKS
            if sys.modules.get(name) is not None or importlib.util.find_spec(name) is not None]


def imported() -> list[Adapter]:
    """The adapters of the registered SDKs already imported by the application (imports nothing new)."""
    return [_adapter(name) for name in SDKS if sys.modules.get(name) is not None]


def adapter_for(client: Any) -> Adapter | None:
    """The adapter whose SDK made ``client``, or None. A client's SDK is imported already."""
    for adapter in imported():
        if adapter.owns(client):
            return adapter
    return None


def provider_for_client(client: Any) -> str:
    """The ``provider`` label of a client of any supported SDK.

    >>> provider_for_client(openai.AzureOpenAI(...))  # doctest: +SKIP
    'azure_openai'
    """
    adapter = adapter_for(client)
    if adapter is None:
        raise TypeError(f"{type(client).__name__} is not a client of a supported SDK ({', '.join(SDKS)})")
    return adapter.provider_label(client)
