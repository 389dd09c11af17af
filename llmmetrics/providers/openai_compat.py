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
- ``with_raw_response`` returns ``openai._legacy_response.LegacyAPIResponse`` (private) in every major, and
  marks its request with the ``X-Stainless-Raw-Response`` header.
- ``stream_options={"include_usage": True}`` is accepted by ``chat.completions.create`` in every one.
- The request id: the ``x-request-id`` header everywhere; a parsed response carries it as ``_request_id``
  (private, a plain instance attribute).
- Usage details: the Responses API's ``usage.input_tokens_details`` is a model from 1.67.0 on; 1.66.x has no
  such field and keeps the server's value as a plain dict. Chat's ``*_tokens_details`` are models in all.
- "Not given" sentinels: ``openai.NotGiven`` and ``openai.Omit`` are public classes in every major (1.x
  defaults to ``NOT_GIVEN``; later releases also to ``omit``).
"""

from __future__ import annotations

from typing import Any

import openai

__all__ = ["RAW_RESPONSE_TYPES", "REQUEST_ID_HEADER", "UNSET", "client_of", "detail", "is_raw_request",
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


def detail(details: Any, name: str) -> Any:
    """``details.name`` for a usage detail that is a model, a plain dict (openai 1.66) or absent."""
    if details is None:
        return None
    if type(details) is dict:
        return details.get(name)
    return getattr(details, name, None)
