"""Instrumentation of the ``openai`` client: every create call becomes metrics plus one trace record.

Traced: ``chat.completions.create``, ``responses.create`` and ``embeddings.create`` on ``OpenAI`` and
``AsyncOpenAI`` (and subclasses such as ``AzureOpenAI``), including ``stream=True`` and ``with_raw_response``.

- ``instrument(client)`` traces one client (and the copies ``with_options`` makes of it);
  ``instrument()`` traces every client process-wide by patching the resource classes. Both are idempotent,
  and ``uninstrument`` undoes exactly what ``instrument`` did.
- The object returned and the exception raised are the ones the bare client returns and raises. A stream
  is returned as the very same ``Stream`` object; only its iterator is wrapped.
- For chat streams the API is asked for usage (``stream_options.include_usage``) when the user did not ask,
  and the extra usage-only chunk is withheld, so user code sees exactly the chunks it would have seen.
- A failure inside the instrumentation is counted (``llmmetrics_instrumentation_errors_total``) and logged
  at debug; it never reaches the user's call.
"""

from __future__ import annotations

import functools
import importlib
import logging
from random import getrandbits
import time
import types
from typing import Any

from openai._legacy_response import LegacyAPIResponse
from openai._types import NotGiven, Omit

from prometheus_client.samples import Exemplar

from .context import _bound, _run
from .providers import provider_for_client
from .record import timestamp
from .runtime import Runtime, runtime
from .streams import wrap_async_stream, wrap_sync_stream

__all__ = ["instrument", "uninstrument", "is_instrumented", "call_llm_with_tracing"]

log = logging.getLogger("llmmetrics")

#: operation → (module, sync class, async class) of the openai resource that implements ``create``.
_TARGETS = {
    "chat": ("openai.resources.chat.completions.completions", "Completions", "AsyncCompletions"),
    "responses": ("openai.resources.responses.responses", "Responses", "AsyncResponses"),
    "embeddings": ("openai.resources.embeddings", "Embeddings", "AsyncEmbeddings"),
}
_RESOURCE_PATHS = {"chat": ("chat", "completions"), "responses": ("responses",), "embeddings": ("embeddings",)}
_CONTENT_ARG = {"chat": "messages", "responses": "input", "embeddings": "input"}
_NOT_KWARGS = frozenset({"model", "messages", "input", "stream"})
_SECRET_HEADERS = frozenset({"authorization", "api-key", "x-api-key", "openai-api-key", "proxy-authorization",
                             "cookie", "x-goog-api-key", "ocp-apim-subscription-key"})
_NO_DICT: dict[str, Any] = {}
_MARK = "__llmmetrics_original__"
_PROVIDER_ATTR = "_llmmetrics_provider"
_INSTANCE_ATTR = "_llmmetrics_instrumented"


class Call:
    """One traced call in flight: what was asked, when, under which run and context."""

    __slots__ = ("rt", "operation", "provider", "model", "model_label", "series", "kwargs", "content", "stream",
                 "ts_ns", "t0", "ctx", "run", "_ids", "first_token", "chunks", "usage", "response_model",
                 "finish_reason", "tool_calls", "provider_request_id", "finished", "output", "stream_error",
                 "response", "http_response", "latency", "ttft", "error", "tokens", "cost", "completed")

    def __init__(self, rt: Runtime, operation: str, resource: Any, kwargs: dict[str, Any]) -> None:
        self.rt = rt
        self.operation = operation
        client = resource._client
        provider = getattr(client, _PROVIDER_ATTR, None)
        if provider is None:
            provider = rt.config.provider or provider_for_client(client)
            try:
                setattr(client, _PROVIDER_ATTR, provider)
            except Exception:  # a client that refuses attributes just pays the lookup each call
                pass
        self.provider = provider
        self.model = model = kwargs.get("model")
        self.series = series = rt.metrics.series_for(provider, model, operation)
        self.model_label = series.model_label
        self.kwargs = kwargs
        self.content = kwargs.get(_CONTENT_ARG[operation])
        self.stream = kwargs.get("stream") is True
        if type(self.content) is list:
            self.content = list(self.content)  # the record is built later; the user may append meanwhile
        self.ctx = _bound.get()
        self.run = _run.get()
        self._ids: tuple[str, str, str] | None = None
        self.first_token: float | None = None
        self.chunks: list[str] | None = None
        self.usage: Any = None
        self.response_model: str | None = None
        self.finish_reason: str | None = None
        self.tool_calls: list[dict[str, Any]] | None = None
        self.provider_request_id: str | None = None
        self.output: str | None = None
        self.response: Any = None
        self.http_response: Any = None
        self.stream_error: BaseException | None = None
        self.error: dict[str, Any] | None = None
        self.ttft: float | None = None
        self.tokens: tuple[int | None, int | None, int | None, int | None] | None = None
        self.cost: float | None = None
        self.finished = False
        self.completed = False
        self.series.start()
        self.ts_ns = time.time_ns()
        self.t0 = time.perf_counter()

    # -- outcomes -------------------------------------------------------------------------------------------

    def succeed(self) -> None:
        self._finish(time.perf_counter(), None)

    def fail(self, exc: BaseException) -> None:
        self._finish(time.perf_counter(), exc)

    def _finish(self, t1: float, exc: BaseException | None) -> None:
        """The call-path end of a call: its latency and error noted, in-flight down, the call to the exporter."""
        if self.finished:
            return
        self.finished = True
        self.latency = t1 - self.t0
        if self.first_token is not None:
            self.ttft = self.first_token - self.t0
        if exc is not None:
            self.error = {"type": type(exc).__name__, "message": str(exc)[:2000],
                          "status_code": getattr(exc, "status_code", None)}
            if self.provider_request_id is None:
                self.provider_request_id = getattr(exc, "request_id", None)
        self.series.end()
        if self.run is not None:
            self.run.steps.append(self)
        self.rt.submit(self)

    def complete(self) -> None:
        """The exporter's part of a finished call: read the response, then count the call in the metrics.

        Off the call path, so every series but in-flight trails the call by about one exporter interval
        (0.1 s); a call the exporter queue cannot take is completed on the spot, so none goes uncounted.
        """
        if self.completed:
            return
        self.completed = True
        if self.response is not None or self.http_response is not None:
            try:
                self._read_content()
            except Exception:
                self.rt.self_metrics.instrumentation_errors.labels("record").inc()
                log.debug("llmmetrics: could not read the response content", exc_info=True)
        latency = self.latency
        at = self.ts_ns * 1e-9 + latency  # exemplar timestamp: the call's end, without another clock read
        ids = {"trace_id": self.trace_id, "span_id": self.span_id}
        if self.error is not None:
            self.series.failed(latency, Exemplar(ids, latency, at), self.ttft, self.error["type"])
            return
        usage = self.usage
        cost = cost_exemplar = None
        if usage is not None:
            try:
                self.tokens = tokens = _read_usage(self.operation, usage)
            except Exception:
                self.rt.self_metrics.instrumentation_errors.labels("record").inc()
                log.debug("llmmetrics: could not read the usage", exc_info=True)
            else:
                price = self.rt.prices.lookup(self.model, self.response_model)
                if price is not None:
                    self.cost = cost = price.cost(tokens[0] or 0, tokens[1] or 0, tokens[2] or 0)
                    cost_exemplar = Exemplar(ids, cost, at)
        self.series.succeeded(latency, Exemplar(ids, latency, at), self.ttft, self.tokens, cost, cost_exemplar)

    def step(self) -> dict[str, Any]:
        """This call as a step of its run record."""
        self.complete()  # normally done already: the call reached the exporter before its run's end
        error = self.error
        input_tokens, output_tokens, cached, reasoning = self.tokens or (None, None, None, None)
        return {
            "call_id": self.call_id, "span_id": self.span_id, "operation": self.operation, "model": self.model,
            "status": "error" if error else "success", "latency_ms": self.latency * 1000.0,
            "input_tokens": input_tokens, "output_tokens": output_tokens, "cached_input_tokens": cached,
            "reasoning_tokens": reasoning, "cost_usd": self.cost, "error_type": error["type"] if error else None,
            "error_message": error["message"] if error else None,
        }

    # Ids are made on first use, off the call path: by the exporter, for the exemplars, the record and the
    # run's steps. A call in a run shares the run's trace id.

    @property
    def trace_id(self) -> str:
        return (self._ids or self._new_ids())[0]

    @property
    def span_id(self) -> str:
        return (self._ids or self._new_ids())[1]

    @property
    def call_id(self) -> str:
        return (self._ids or self._new_ids())[2]

    def _new_ids(self) -> tuple[str, str, str]:
        run = self.run
        if run is None:
            raw = f"{getrandbits(320):080x}"
            ids = raw[:32], raw[32:48], raw[48:]
        else:
            raw = f"{getrandbits(192):048x}"
            ids = run.trace_id, raw[:16], raw[16:]
        self._ids = ids
        return ids

    def record(self) -> dict[str, Any]:
        """The trace record of this finished call (built by the exporter thread, not on the call path)."""
        self.complete()
        error, ttft = self.error, self.ttft
        input_tokens, output_tokens, cached, reasoning = self.tokens or (None, None, None, None)
        run = self.run
        rt = self.rt
        output = self.output
        if output is None and self.chunks:
            output = "".join(self.chunks)
        total = None if input_tokens is None else input_tokens + (output_tokens or 0)
        return {
            "kind": "call",
            "call_id": self.call_id,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": run.span_id if run is not None else None,
            "parent_trace_id": run.trace_id if run is not None else None,
            "run_name": run.name if run is not None else None,
            "timestamp": timestamp(self.ts_ns),
            "ts_ns": self.ts_ns,
            "service": rt.config.service,
            "env": rt.config.env,
            "provider": self.provider,
            "operation": self.operation,
            "model": self.model,
            "response_model": self.response_model,
            "stream": self.stream,
            "status": "error" if error else "success",
            "latency_ms": self.latency * 1000.0,
            "ttft_ms": None if ttft is None else ttft * 1000.0,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cached_input_tokens": cached,
            "reasoning_tokens": reasoning,
            "total_tokens": total,
            "cost_usd": self.cost,
            "error": error,
            "messages": self.content,
            "kwargs": _safe_kwargs(self.kwargs),
            "output": output,
            "finish_reason": self.finish_reason,
            "tool_calls": self.tool_calls,
            "provider_request_id": self.provider_request_id,
            "user_id": None,
            "request_id": None,
            "feature_flags": {},
            "context": {},
            "sampled": None,
            "truncated": False,
            "_context": self.ctx,
        }

    # -- reading a parsed response -------------------------------------------------------------------------

    def _read_content(self) -> None:
        """The request id of a stream (from its HTTP headers); model, usage, output, finish reason, tool
        calls and request id of a non-stream response."""
        http_response, self.http_response = self.http_response, None
        if http_response is not None and self.provider_request_id is None:
            self.provider_request_id = http_response.headers.get("x-request-id")
        response, self.response = self.response, None
        if response is None:
            return
        self.response_model = getattr(response, "model", None)
        self.usage = getattr(response, "usage", None)
        if self.provider_request_id is None:
            # openai sets _request_id as a plain instance attribute; a missing one would go through
            # pydantic's slow __getattr__, so read the instance dict
            self.provider_request_id = getattr(response, "__dict__", _NO_DICT).get("_request_id")
        op = self.operation
        if op == "chat":
            choices = getattr(response, "choices", None)
            if choices:
                first = choices[0]
                message = first.message
                self.output = message.content
                self.finish_reason = first.finish_reason
                if message.tool_calls:
                    self.tool_calls = [_chat_tool_call(t) for t in message.tool_calls]
        elif op == "responses":
            self.read_responses_object(response)

    def read_responses_object(self, response: Any) -> None:
        self.response_model = getattr(response, "model", None) or self.response_model
        self.usage = getattr(response, "usage", None)
        self.output = getattr(response, "output_text", None)
        details = getattr(response, "incomplete_details", None)
        self.finish_reason = getattr(details, "reason", None) or getattr(response, "status", None)
        calls = [i for i in getattr(response, "output", None) or () if getattr(i, "type", None) == "function_call"]
        if calls:
            self.tool_calls = [{"id": c.call_id, "name": c.name, "arguments": c.arguments} for c in calls]


def _chat_tool_call(tool_call: Any) -> dict[str, Any]:
    function = getattr(tool_call, "function", None)
    return {"id": tool_call.id, "name": getattr(function, "name", None), "arguments": getattr(function, "arguments", None)}


def _read_usage(operation: str, usage: Any) -> tuple[int | None, int | None, int | None, int | None]:
    """(input, output, cached input, reasoning) from either usage shape; absent parts are None."""
    if operation == "responses":
        input_tokens = usage.input_tokens
        output_tokens = usage.output_tokens
        cached = getattr(usage.input_tokens_details, "cached_tokens", None)
        reasoning = getattr(usage.output_tokens_details, "reasoning_tokens", None)
        return input_tokens, output_tokens, cached, reasoning
    input_tokens = usage.prompt_tokens
    if operation == "embeddings":
        return input_tokens, None, None, None
    details = usage.prompt_tokens_details
    cached = details.cached_tokens if details is not None else None
    details = usage.completion_tokens_details
    reasoning = details.reasoning_tokens if details is not None else None
    return input_tokens, usage.completion_tokens, cached, reasoning


def _safe_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Request arguments worth recording: no content (recorded apart), no unset sentinels, no secrets."""
    out = {k: v for k, v in kwargs.items() if k not in _NOT_KWARGS and not isinstance(v, (NotGiven, Omit))}
    headers = out.get("extra_headers")
    if headers:
        out["extra_headers"] = {k: ("[REDACTED]" if str(k).lower() in _SECRET_HEADERS else v)
                                for k, v in headers.items() if not str(k).lower().startswith("x-stainless")}
    return out


# -- wrapping create --------------------------------------------------------------------------------------------

def _is_raw(kwargs: dict[str, Any]) -> bool:
    headers = kwargs.get("extra_headers")
    return bool(headers) and "X-Stainless-Raw-Response" in headers  # set by with_raw_response/with_streaming_response


def _prepare_stream(call: Call, kwargs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Ask a chat stream for usage if the user did not; return the kwargs to send and whether we asked."""
    if call.operation != "chat":
        return kwargs, False
    options = kwargs.get("stream_options")
    if isinstance(options, dict) and "include_usage" in options:
        return kwargs, False
    merged = {**options, "include_usage": True} if isinstance(options, dict) else {"include_usage": True}
    return {**kwargs, "stream_options": merged}, True


def _on_result(call: Call, result: Any, withhold_usage: bool, is_async: bool) -> Any:
    """Record a returned value; streams get their iterator wrapped and finish later. Returns ``result``."""
    raw = isinstance(result, LegacyAPIResponse)  # with_raw_response (sync and async)
    try:
        if raw:
            call.provider_request_id = result.headers.get("x-request-id")
            parsed = result.parse()  # cached by openai: the user's own parse() returns this same object
        else:
            parsed = result
        if call.stream:
            call.http_response = getattr(parsed, "response", None)  # its request id is read by the exporter
            if is_async:
                wrap_async_stream(parsed, call, withhold_usage)
            else:
                wrap_sync_stream(parsed, call, withhold_usage)
            return result
        call.response = parsed  # read by the exporter
    except Exception as exc:  # e.g. parse() of an invalid body: the user will see this when they parse
        if raw:
            call.fail(exc)
            return result
        call.rt.self_metrics.instrumentation_errors.labels("record").inc()
        log.debug("llmmetrics: could not read the response", exc_info=True)
    call._finish(time.perf_counter(), None)
    return result


def _begin(operation: str, resource: Any, kwargs: dict[str, Any]) -> tuple[Call | None, dict[str, Any], bool]:
    """Start tracing: the call, the kwargs to send, and whether a usage chunk must be withheld."""
    rt = runtime()
    try:
        call = Call(rt, operation, resource, kwargs)
    except Exception:
        rt.self_metrics.instrumentation_errors.labels("record").inc()
        log.debug("llmmetrics: could not start tracing a call", exc_info=True)
        return None, kwargs, False
    if not call.stream:
        return call, kwargs, False
    send, withhold = _prepare_stream(call, kwargs)
    if withhold and _is_raw(kwargs):
        return call, kwargs, False  # a raw stream is read by the user: never alter what they read
    return call, send, withhold


def _traced_sync(operation: str, original: Any) -> Any:
    @functools.wraps(original)
    def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        call, send, withhold = _begin(operation, self, kwargs)
        if call is None:
            return original(self, *args, **kwargs)
        try:
            result = original(self, *args, **send)
        except BaseException as exc:
            call.fail(exc)
            raise
        return _on_result(call, result, withhold, False)

    setattr(create, _MARK, original)
    return create


def _traced_async(operation: str, original: Any) -> Any:
    @functools.wraps(original)
    async def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        call, send, withhold = _begin(operation, self, kwargs)
        if call is None:
            return await original(self, *args, **kwargs)
        try:
            result = await original(self, *args, **send)
        except BaseException as exc:
            call.fail(exc)
            raise
        return _on_result(call, result, withhold, True)

    setattr(create, _MARK, original)
    return create


# -- instrument / uninstrument ------------------------------------------------------------------------------------

def _classes() -> list[tuple[str, type, bool]]:
    found = []
    for operation, (module_name, sync_name, async_name) in _TARGETS.items():
        module = importlib.import_module(module_name)
        found.append((operation, getattr(module, sync_name), False))
        found.append((operation, getattr(module, async_name), True))
    return found


def _wrap(operation: str, original: Any, is_async: bool) -> Any:
    return (_traced_async if is_async else _traced_sync)(operation, original)


def instrument(client: Any = None) -> Any:
    """Trace one ``openai`` client (returned, for chaining), or every client when called with no argument.

    >>> client = instrument(openai.OpenAI())  # doctest: +SKIP
    """
    if client is None:
        for operation, cls, is_async in _classes():
            if not hasattr(cls.create, _MARK):
                cls.create = _wrap(operation, cls.create, is_async)
        return None
    if is_instrumented(client):
        return client
    import openai

    is_async = isinstance(client, openai.AsyncOpenAI)
    for operation, path in _RESOURCE_PATHS.items():
        resource = client
        for attr in path:
            resource = getattr(resource, attr)
        original = type(resource).create
        original = getattr(original, _MARK, original)
        resource.__dict__.pop("with_raw_response", None)  # rebuilt from our create on next access
        resource.create = types.MethodType(_wrap(operation, original, is_async), resource)
    original_copy = type(client).copy

    def copy(*args: Any, **kwargs: Any) -> Any:
        return instrument(original_copy(client, *args, **kwargs))

    client.copy = client.with_options = copy
    setattr(client, _INSTANCE_ATTR, True)
    return client


def uninstrument(client: Any = None) -> None:
    """Undo ``instrument``: for one client, or process-wide when called with no argument."""
    if client is None:
        for _operation, cls, _is_async in _classes():
            original = getattr(cls.create, _MARK, None)
            if original is not None:
                cls.create = original
        return
    if not getattr(client, _INSTANCE_ATTR, False):
        return
    for path in _RESOURCE_PATHS.values():
        resource = client
        for attr in path:
            resource = getattr(resource, attr)
        resource.__dict__.pop("create", None)
        resource.__dict__.pop("with_raw_response", None)
    client.__dict__.pop("copy", None)
    client.__dict__.pop("with_options", None)
    client.__dict__.pop(_INSTANCE_ATTR, None)


def is_instrumented(client: Any = None) -> bool:
    """True if ``client`` (or, with no argument, every client process-wide) is traced."""
    if client is None:
        return all(hasattr(cls.create, _MARK) for _op, cls, _a in _classes())
    if getattr(client, _INSTANCE_ATTR, False):
        return True
    return hasattr(type(client.chat.completions).create, _MARK)


def call_llm_with_tracing(client: Any, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
    """The design article's wrapper, kept as a convenience: one traced chat completion.

    Works with a bare or an instrumented client (never counted twice); returns what the client returns.

    >>> call_llm_with_tracing(client, "gpt-4o-mini", [{"role": "user", "content": "hi"}], temperature=0)  # doctest: +SKIP
    """
    completions = client.chat.completions
    if is_instrumented(client):
        return completions.create(model=model, messages=messages, **kwargs)
    original = getattr(type(completions).create, _MARK, type(completions).create)
    return _traced_sync("chat", original)(completions, model=model, messages=messages, **kwargs)
