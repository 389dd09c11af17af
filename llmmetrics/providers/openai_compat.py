"""What differs between the openai releases llmmetrics supports (1.66.0 up to 3.x), and every private name
of the SDK it relies on — each behind a fallback that keeps the user's call working if it moves.

Read from the releases themselves (1.66.0, 1.109.1, 2.54.0, 3.57.0; tests/providers pins each item):

- Transport: ``httpx`` under 1.x and 2.x, ``httpx2`` under 3.x. llmmetrics only calls ``headers.get`` on a
  response, which both provide.
- ``responses.create`` first appears in 1.66.0; ``chat.completions`` (``openai.resources.chat.completions``)
  and ``embeddings`` are older. Their classes and module paths are the same from 1.66.0 on.
- ``Stream``/``AsyncStream``: the same in every major (public ``openai.Stream``; the iterator in the private
  ``_iterator``, the HTTP response in ``response``, ``close()``). Shared with other Stainless SDKs in
  :mod:`llmmetrics.streams`.
- How a stream builds its items, the same in every major although ``__stream__`` differs (1.x drains the
  events after ``[DONE]``, 2.x on close the response in a ``finally``, 3.x also maps transport errors and
  drains async HTTP/1.1 bodies): when iteration starts, ``__stream__`` looks up
  ``self._client._process_response_data`` (private) once, and for each event parses the JSON itself and
  calls it with ``data=``, ``cast_to=``, ``response=`` to build the pydantic item.
  :func:`llmmetrics.streams.reading_client` gives one stream its own: llmmetrics reads each chunk from the parsed JSON, before its model exists, and can
  leave out a chunk the user must not see without building it. :data:`PARSED_HOOK` checks both classes'
  code for that lookup and call; if it changed, llmmetrics reads the models instead (slower, same result).
- ``with_raw_response`` returns ``openai._legacy_response.LegacyAPIResponse`` (private) in every major, and
  marks its request with the ``X-Stainless-Raw-Response`` header.
- ``stream_options={"include_usage": True}`` is accepted by ``chat.completions.create`` in every one.
- The request id: the ``x-request-id`` header everywhere; a parsed response carries it as ``_request_id``
  (private, a plain instance attribute).
- Usage details: the Responses API's ``usage.input_tokens_details`` is a model from 1.67.0 on; 1.66.x has no
  such field and keeps the server's value as a plain dict (``llmmetrics.streams.field`` reads either). Chat's
  ``*_tokens_details`` are models in all.
- "Not given" sentinels: ``openai.NotGiven`` and ``openai.Omit`` are public classes in every major (1.x
  defaults to ``NOT_GIVEN``; later releases also to ``omit``).
"""

from __future__ import annotations

from typing import Any

import openai

from ..streams import builds_items_through_client

__all__ = ["PARSED_HOOK", "RAW_RESPONSE_TYPES", "REQUEST_ID_HEADER", "UNSET", "client_of", "is_raw_request",
           "is_raw_response", "request_id_of"]

REQUEST_ID_HEADER = "x-request-id"
_RAW_RESPONSE_HEADER = "X-Stainless-Raw-Response"  # set by with_raw_response ("true") and with_streaming_response
_NO_DICT: dict[str, Any] = {}

UNSET: tuple[type, ...] = tuple(t for t in (getattr(openai, "NotGiven", None), getattr(openai, "Omit", None))
                                if isinstance(t, type))

try:
    from openai._legacy_response import LegacyAPIResponse as _LegacyAPIResponse
except ImportError:  # moved or renamed: recognise the raw response by what it offers instead
    _LegacyAPIResponse = None

#: What ``with_raw_response.create`` returns, for a bare ``isinstance`` on the call path; empty if it moved.
RAW_RESPONSE_TYPES: tuple[type, ...] = (_LegacyAPIResponse,) if _LegacyAPIResponse is not None else ()


#: True if this openai's streams can be given their own item builder (:func:`llmmetrics.streams.reading_client`).
PARSED_HOOK: bool = builds_items_through_client(openai.Stream) and builds_items_through_client(openai.AsyncStream)


def is_raw_response(result: Any) -> bool:
    """True for what ``with_raw_response.create`` returns (sync and async)."""
    if RAW_RESPONSE_TYPES:
        return isinstance(result, RAW_RESPONSE_TYPES)
    return callable(getattr(result, "parse", None)) and hasattr(result, "http_response")


def is_raw_request(kwargs: dict[str, Any]) -> bool:
    """True if the user reads the raw HTTP response (``with_raw_response``/``with_streaming_response``)."""
    headers = kwargs.get("extra_headers")
    return bool(headers) and _RAW_RESPONSE_HEADER in headers


def client_of(resource: Any) -> Any:
    """The client a resource (``client.chat.completions``) belongs to; the resource itself if it moved."""
    return getattr(resource, "_client", resource)


def request_id_of(response: Any) -> str | None:
    """The ``_request_id`` openai sets on a parsed response.

    Read from the instance dict: a missing attribute would go through pydantic's slow ``__getattr__``.
    """
    return getattr(response, "__dict__", _NO_DICT).get("_request_id")
