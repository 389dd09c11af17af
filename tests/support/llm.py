"""The real ``openai`` client against the fake LLM server, and a configured runtime to read back (``Traced``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import orjson
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import generate_latest

from llmmetrics.fake import FakeLLMServer

API_KEY = "sk-test-0123456789abcdefghijklmnop"


class Traced:
    """A configured runtime with its own registry and trace file, and ways to read both back."""

    def __init__(self, registry: CollectorRegistry, path: Path, runtime: Any) -> None:
        self.registry = registry
        self.path = path
        self.runtime = runtime

    def records(self, kind: str | None = "call") -> list[dict[str, Any]]:
        assert self.runtime.flush(10), "trace records were not delivered within 10 s"
        if not self.path.exists():
            return []
        rows = [orjson.loads(line) for line in self.path.read_bytes().splitlines() if line]
        return [r for r in rows if kind is None or r["kind"] == kind]

    def only_record(self) -> dict[str, Any]:
        records = self.records()
        assert len(records) == 1, records
        return records[0]

    def value(self, name: str, **labels: str) -> float | None:
        assert self.runtime.flush(10), "the exporter did not finish within 10 s"  # it counts tokens and cost
        return self.registry.get_sample_value(name, labels)

    def openmetrics(self) -> str:
        assert self.runtime.flush(10), "the exporter did not finish within 10 s"
        return generate_latest(self.registry).decode()


def make_client(server: FakeLLMServer, *, is_async: bool = False, timeout: float = 10.0) -> Any:
    cls = openai.AsyncOpenAI if is_async else openai.OpenAI
    return cls(base_url=server.base_url, api_key=API_KEY, max_retries=0, timeout=timeout)


#: Record fields that differ between two runs of the same call (ids, clocks, durations).
VOLATILE_FIELDS = frozenset({"call_id", "trace_id", "span_id", "timestamp", "ts_ns", "latency_ms", "ttft_ms",
                             "time_per_chunk_ms"})


def stable(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` without its :data:`VOLATILE_FIELDS`: what two runs of the same call must agree on."""
    return {k: v for k, v in record.items() if k not in VOLATILE_FIELDS}


def recording_reader(seen: list[Any]) -> Any:
    """A stream-reader factory for ``llmmetrics.streams.reading_client`` that appends each item's parsed JSON to
    ``seen`` and builds it as the SDK would."""
    def make(original: Any, call: Any, note: Any) -> Any:
        def build(*, data: Any, cast_to: Any, response: Any) -> Any:
            seen.append(data)
            return original(data=data, cast_to=cast_to, response=response)
        return build
    return make
