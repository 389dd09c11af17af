"""llmmetrics vs the bare client, run exactly like a peer: a fresh process, the same harness and workloads.

The instrumented side is the production setup: metrics, a trace record per call (content at 100 %), the
JSONL file sink and the Loki sink pushing to the accept-all endpoint the orchestrator passes as
``--collector``. Run by ``benchmarks/peers.py`` with the project's own interpreter; prints ``RESULT {json}``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # noqa: E402


def main() -> None:
    args = common.peer_args()
    from importlib.metadata import version

    from prometheus_client import CollectorRegistry

    import llmmetrics

    trace_dir = tempfile.mkdtemp(prefix="llmmetrics-peers-")
    llmmetrics.configure(registry=CollectorRegistry(), trace_file=os.path.join(trace_dir, "traces.jsonl"),
                         sample_success_ratio=1.0, loki_url=args.collector)
    bare, abare = common.inprocess_client(), common.inprocess_client(is_async=True)
    client = llmmetrics.instrument(common.inprocess_client())
    aclient = llmmetrics.instrument(common.inprocess_client(is_async=True))

    def settle() -> None:
        llmmetrics.flush(30.0)

    sync_pairs = {w: (lambda f=f: f(bare), lambda f=f: f(client)) for w, f in common.SYNC_WORKLOADS.items()}
    async_pairs = {"chat": (lambda: common.achat(abare), lambda: common.achat(aclient))}
    result = common.run_peer("llmmetrics", sync_pairs, async_pairs, n=args.calls, cpu_calls=args.cpu_calls,
                             cpu_block_count=args.cpu_blocks, settle=settle,
                             info={"package": "llmmetrics", "version": version("llmmetrics"),
                                   "export": "JSONL file + Loki push to a local accept-all endpoint"
                                   if args.collector else "JSONL file"})
    llmmetrics.shutdown(10.0)
    common.emit_peer_result(result)


if __name__ == "__main__":
    main()
