"""The price table: every shipped entry is well-formed and sourced, names resolve the way each SDK and
platform spells them, and a cost splits input into uncached, cache reads and cache writes (5-minute and
1-hour) at their own rates."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from llmmetrics.pricing import Price, PriceTable, PriceTableError

SHIPPED = json.loads(resources.files("llmmetrics").joinpath("prices.json").read_text())["models"]
TABLE = PriceTable.load()


@pytest.mark.parametrize("model", sorted(SHIPPED))
def test_every_shipped_price_has_a_source_and_an_effective_date(model: str) -> None:
    """Each entry names where its price was published and the date it is in effect from (YYYY-MM-DD)."""
    entry = SHIPPED[model]
    assert entry["source"].startswith("https://") and len(entry["effective"]) == 10
    assert all(entry[k] >= 0 for k in ("input", "output", "cached_input", "cache_write", "cache_write_1h") if k in entry)


def test_claude_entries_carry_all_five_published_rates() -> None:
    """Claude models ship input, cache read, 5-minute and 1-hour cache write and output rates, the writes
    above the input rate and the reads below it, as Anthropic prices them."""
    claude = {m: e for m, e in SHIPPED.items() if m.startswith("claude-")}
    assert claude
    for model, entry in claude.items():
        assert entry["cached_input"] < entry["input"] < entry["cache_write"] < entry["cache_write_1h"], model
        assert entry["source"].startswith("https://platform.claude.com/docs/"), model


@pytest.mark.parametrize("name", [
    "claude-haiku-4-5", "claude-haiku-4-5-20251001", "Claude-Haiku-4-5", "anthropic/claude-haiku-4-5",
    "claude-haiku-4-5@20251001",  # Vertex
    "anthropic.claude-haiku-4-5-20251001-v1:0", "us.anthropic.claude-haiku-4-5-20251001-v1:0",  # Bedrock
    "global.anthropic.claude-haiku-4-5-20251001-v1:0",
])
def test_claude_names_resolve_as_each_platform_spells_them(name: str) -> None:
    """First-party ids, dated snapshots, Vertex's @version and Bedrock's ids and inference profiles find the
    base entry."""
    assert TABLE.lookup(name) is TABLE.lookup("claude-haiku-4-5") is not None


def test_openai_names_still_resolve() -> None:
    """Dated snapshots and vendor prefixes of OpenAI models resolve as before."""
    assert TABLE.lookup("gpt-4o-mini-2024-07-18") is TABLE.lookup("openrouter/openai/gpt-4o-mini") is not None
    assert TABLE.lookup("claude-unreleased-9") is None and TABLE.lookup("us.anthropic.unknown-v1:0") is None


def test_cost_splits_input_into_uncached_reads_and_writes() -> None:
    """input counts everything; reads, 5-minute and 1-hour writes are billed at their own rates, output apart."""
    price = Price(1e-6, 0.1e-6, 5e-6, 1.25e-6, 2e-6)
    cost = price.cost(input_tokens=10_000, output_tokens=100, cached_input_tokens=3_000, cache_write_tokens=4_000,
                      cache_write_1h_tokens=1_000)
    assert cost == pytest.approx(3_000 * 1e-6 + 3_000 * 0.1e-6 + 3_000 * 1.25e-6 + 1_000 * 2e-6 + 100 * 5e-6, rel=1e-12)


def test_cache_write_rates_default_to_the_input_rate() -> None:
    """An entry without cache-write rates bills writes as input (OpenAI bills none apart), 1-hour as 5-minute."""
    table = PriceTable({"m": {"input": 2.0, "output": 8.0}, "w": {"input": 2.0, "cache_write": 2.5}})
    plain, written = table.lookup("m"), table.lookup("w")
    assert plain is not None and written is not None
    assert plain.cost(1_000, 0, 0, 500, 100) == pytest.approx(1_000 * 2e-6, rel=1e-12)
    assert written.cache_write_1h == written.cache_write == pytest.approx(2.5e-6)


@pytest.mark.parametrize("entry", [{"input": 1.0, "cache_write": "x"}, {"input": 1.0, "cache_write_1h": -1}])
def test_malformed_cache_write_rates_are_refused_naming_the_model(entry: dict[str, object]) -> None:
    """A bad cache-write rate fails at load time with the model named, like any other field."""
    with pytest.raises(PriceTableError, match="'m'"):
        PriceTable({"m": entry})
