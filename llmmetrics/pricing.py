"""Cost of a call from its token usage and a price table (US dollars per 1M tokens).

The table ships as ``prices.json`` (each entry with its source and effective date) and can be extended or
overridden by a user file or dict. A model that is not in the table has no cost: ``None``, never 0.
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

_DATED_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")
_CACHE_LIMIT = 1024


class PriceTableError(ValueError):
    """A price file or dict is malformed; the message names the model and field."""


class Price:
    """Dollars per token (already divided by 1M) for one model."""

    __slots__ = ("input", "cached_input", "output")

    def __init__(self, input: float, cached_input: float, output: float) -> None:
        self.input = input
        self.cached_input = cached_input
        self.output = output

    def cost(self, input_tokens: int, output_tokens: int, cached_input_tokens: int) -> float:
        """Cached input tokens are the discounted part of the input; reasoning tokens are part of output."""
        uncached = max(input_tokens - cached_input_tokens, 0)
        return uncached * self.input + cached_input_tokens * self.cached_input + output_tokens * self.output


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
        for candidate in (name, name.rsplit("/", 1)[-1]):
            if candidate in self._prices:
                return self._prices[candidate]
            base = _DATED_SNAPSHOT.sub("", candidate)
            if base in self._prices:
                return self._prices[base]
        return None


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
    except (KeyError, TypeError, ValueError):
        raise PriceTableError(f"price of {model!r}: needs a numeric 'input' (and optional 'output', 'cached_input')") from None
    if min(per_m_input, per_m_output, per_m_cached) < 0:
        raise PriceTableError(f"price of {model!r}: prices must be >= 0")
    return Price(per_m_input / 1e6, per_m_cached / 1e6, per_m_output / 1e6)
