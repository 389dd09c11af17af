"""OpenLLMetry (``opentelemetry-instrumentation-openai``) vs the bare client, in this process.

Set up as its docs show, with the SDK's in-memory span exporter behind a ``BatchSpanProcessor`` and an
in-memory metric reader, so no network is involved. The instrumentor patches the openai classes
process-wide; the bare side calls the ``create`` functions saved before patching.
Run by ``benchmarks/peers.py`` inside its own virtualenv; prints one ``RESULT {json}`` line.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # noqa: E402


def main() -> None:
    args = common.peer_args()
    originals = common.original_creates()

    from importlib.metadata import version

    from opentelemetry.instrumentation.openai import OpenAIInstrumentor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    OpenAIInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)

    client = common.inprocess_client()
    aclient = common.inprocess_client(is_async=True)
    bare, abare = common.unpatched(client, originals), common.unpatched(aclient, originals)

    def settle() -> None:
        tracer_provider.force_flush()
        exporter.clear()  # keep memory flat across blocks

    # proof that the instrumentation is live on this openai version: one call makes one span
    common.chat(client)
    tracer_provider.force_flush()
    spans_for_one_call = len(exporter.get_finished_spans())
    settle()

    sync_pairs = {w: (lambda f=f: f(bare), lambda f=f: f(client)) for w, f in common.SYNC_WORKLOADS.items()}
    async_pairs = {"chat": (lambda: common.achat(abare), lambda: common.achat(aclient))}
    result = common.run_peer("openllmetry", sync_pairs, async_pairs, n=args.calls, cpu_calls=args.cpu_calls,
                             cpu_block_count=args.cpu_blocks, settle=settle,
                             info={"package": "opentelemetry-instrumentation-openai",
                                   "version": version("opentelemetry-instrumentation-openai"),
                                   "sdk": version("opentelemetry-sdk"),
                                   "export": "BatchSpanProcessor(InMemorySpanExporter) + InMemoryMetricReader"})
    settle()
    result["info"]["spans_for_one_call"] = spans_for_one_call
    common.emit_peer_result(result)


if __name__ == "__main__":
    main()
