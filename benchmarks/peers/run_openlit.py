"""OpenLIT (``openlit.init()``) vs the bare client, in this process.

OpenLIT is set up as its docs show, exporting traces and metrics over OTLP/HTTP to the accept-all endpoint
the orchestrator passes as ``--collector``; its price table is given as a local file so it fetches nothing.
``openlit.init`` patches the openai classes process-wide; the bare side calls the ``create`` functions saved
before. OpenLIT pins ``openai<3``, so its venv runs openai 2.x (bare measured there too).
Run by ``benchmarks/peers.py`` inside its own virtualenv; prints one ``RESULT {json}`` line.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # noqa: E402


def main() -> None:
    args = common.peer_args()
    if not args.collector:
        raise SystemExit("openlit runner needs --collector URL (benchmarks/peers.py passes one)")
    originals = common.original_creates()

    from importlib.metadata import version

    import openlit

    prices = Path(tempfile.mkdtemp()) / "pricing.json"
    prices.write_text(json.dumps({"chat": {common.MODEL: {"promptPrice": 0.00015, "completionPrice": 0.0006}}}))
    openlit.init(otlp_endpoint=args.collector, application_name="bench", environment="bench",
                 pricing_json=str(prices))
    client = common.inprocess_client()
    aclient = common.inprocess_client(is_async=True)
    bare, abare = common.unpatched(client, originals), common.unpatched(aclient, originals)

    def settle() -> None:
        from opentelemetry import trace

        provider = trace.get_tracer_provider()
        if hasattr(provider, "force_flush"):
            provider.force_flush()

    sync_pairs = {w: (lambda f=f: f(bare), lambda f=f: f(client)) for w, f in common.SYNC_WORKLOADS.items()}
    async_pairs = {"chat": (lambda: common.achat(abare), lambda: common.achat(aclient))}
    result = common.run_peer("openlit", sync_pairs, async_pairs, n=args.calls, cpu_calls=args.cpu_calls,
                             cpu_block_count=args.cpu_blocks, settle=settle,
                             info={"package": "openlit", "version": version("openlit"),
                                   "export": f"OTLP/HTTP traces and metrics to a local accept-all endpoint "
                                             f"({args.collector})"})
    settle()
    common.emit_peer_result(result)


if __name__ == "__main__":
    main()
