"""Cost of a call from its token usage and a price table (US dollars per 1M tokens).

The table ships as ``prices.json`` (each entry with its source and effective date) and can be extended or
overridden by a user file or dict. A model that is not in the table has no cost: ``None``, never 0.

An entry has ``input`` and optionally ``output``, ``cached_input`` (cache reads; default: the input rate),
``cache_write`` (prompt-cache creation, Anthropic's 5-minute rate; default: the input rate) and
``cache_write_1h`` (1-hour cache creation; default: ``cache_write``). Names resolve the way the SDKs spell
them: dated snapshots (``gpt-4o-mini-2024-07-18``, ``claude-haiku-4-5-20251001``), ``vendor/`` prefixes,
Vertex's ``@20250929`` and Bedrock's ``us.anthropic.claude-…-v1:0`` all find the base entry.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["PriceTable", "Price", "PriceTableError"]

_DATED_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")
#: Bedrock's model ids and inference profiles: ``[us.|eu.|global.…]anthropic.<model>[-v1:0]``
_BEDROCK_ID = re.compile(r"^(?:[a-z]+\.)?anthropic\.(.+?)(?:-v\d+(?::\d+)?)?$")
_CACHE_LIMIT = 1024


class PriceTableError(ValueError):
    """A price file or dict is malformed; the message names the model and field."""


class Price:
    """Dollars per token (already divided by 1M) for one model."""

    __slots__ = ("input", "cached_input", "output", "cache_write", "cache_write_1h")

    def __init__(self, input: float, cached_input: float, output: float, cache_write: float | None = None,
                 cache_write_1h: float | None = None) -> None:
        self.input = input
        self.cached_input = cached_input
        self.output = output
        self.cache_write = input if cache_write is None else cache_write
        self.cache_write_1h = self.cache_write if cache_write_1h is None else cache_write_1h

    def cost(self, input_tokens: int, output_tokens: int, cached_input_tokens: int, cache_write_tokens: int = 0,
             cache_write_1h_tokens: int = 0) -> float:
        """Input includes the cache reads and writes, each billed at its own rate (1-hour writes are a part of
        the writes); reasoning tokens are part of output."""
        uncached = max(input_tokens - cached_input_tokens - cache_write_tokens, 0)
        writes_5m = max(cache_write_tokens - cache_write_1h_tokens, 0)
        return (uncached * self.input + cached_input_tokens * self.cached_input + writes_5m * self.cache_write
                + cache_write_1h_tokens * self.cache_write_1h + output_tokens * self.output)


class PriceTable:
    """Model name → Price, with dated snapshots and ``vendor/`` prefixes resolved to the base entry."""

    def __init__(self, entries: Mapping[str, Mapping[str, Any]]) -> None:
        self._prices: dict[str, Price] = {}
        for model, entry in entries.items():
            self._prices[model.strip().lower()] = _price(model, entry)
        self._resolved: dict[str, Price | None] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, price_file: str | None = None, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> PriceTable:
        """The shipped table, then ``price_file`` entries, then ``overrides`` (later wins per model)."""
        entries: dict[str, Mapping[str, Any]] = dict(_read(resources.files("llmmetrics").joinpath("prices.json").read_text()))
        if price_file:
            entries.update(_read(Path(price_file).read_text(encoding="utf-8"), price_file))
        if overrides:
            entries.update(overrides)
        return cls(entries)

    def lookup(self, *models: str | None) -> Price | None:
        """The price of the first model name that resolves (e.g. requested model, then response model)."""
        for model in models:
            if not model:
                continue
            price = self._resolved.get(model, False)
            if price is False:
                price = self._resolve(model)
                if len(self._resolved) < _CACHE_LIMIT:
                    with self._lock:
                        self._resolved[model] = price
            if price is not None:
                return price  # type: ignore[return-value]
        return None

    def _resolve(self, model: str) -> Price | None:
        name = str(model).strip().lower()
        for candidate in _candidates(name):
            if candidate in self._prices:
                return self._prices[candidate]
            base = _DATED_SNAPSHOT.sub("", candidate)
            if base in self._prices:
                return self._prices[base]
        return None


def _candidates(name: str) -> tuple[str, ...]:
    """The spellings of one model to look up: as given, without a ``vendor/`` prefix, without Vertex's
    ``@version``, and Bedrock's id reduced to the model's own."""
    bare = name.rsplit("/", 1)[-1]
    found = [name, bare]
    if "@" in bare:
        found.append(bare.split("@", 1)[0])
    bedrock = _BEDROCK_ID.match(bare)
    if bedrock is not None:
        found.append(bedrock.group(1))
    return tuple(found)


def _read(text: str, origin: str = "prices.json") -> Mapping[str, Mapping[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PriceTableError(f"{origin}: not valid JSON: {exc}") from None
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise PriceTableError(f'{origin}: expected {{"models": {{"<model>": {{"input": ..., "output": ...}}}}}}')
    return models


def _price(model: str, entry: Mapping[str, Any]) -> Price:
    try:
        per_m_input = float(entry["input"])
        per_m_output = float(entry.get("output", 0.0))
        per_m_cached = float(entry.get("cached_input", per_m_input))
        per_m_write = float(entry.get("cache_write", per_m_input))
        per_m_write_1h = float(entry.get("cache_write_1h", per_m_write))
    except (KeyError, TypeError, ValueError):
        raise PriceTableError(f"price of {model!r}: needs a numeric 'input' (and optional 'output', 'cached_input', "
                              "'cache_write', 'cache_write_1h')") from None
    if min(per_m_input, per_m_output, per_m_cached, per_m_write, per_m_write_1h) < 0:
        raise PriceTableError(f"price of {model!r}: prices must be >= 0")
    return Price(per_m_input / 1e6, per_m_cached / 1e6, per_m_output / 1e6, per_m_write / 1e6, per_m_write_1h / 1e6)
