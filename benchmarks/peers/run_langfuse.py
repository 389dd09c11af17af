"""Langfuse's OpenAI drop-in (``from langfuse.openai import OpenAI``) vs the bare client, in this process.

Langfuse exports its spans (OTLP over HTTP, batched on a background thread) to the accept-all endpoint the
orchestrator passes as ``--collector``, so its whole pipeline runs without a Langfuse server. Importing
``langfuse.openai`` patches the openai classes process-wide; the bare side calls the ``create`` functions
saved before. Run by ``benchmarks/peers.py`` inside its own virtualenv; prints one ``RESULT {json}`` line.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # noqa: E402


def main() -> None:
    args = common.peer_args()
    if not args.collector:
        raise SystemExit("langfuse runner needs --collector URL (benchmarks/peers.py passes one)")
    os.environ.update({"LANGFUSE_PUBLIC_KEY": "pk-lf-bench", "LANGFUSE_SECRET_KEY": "sk-lf-bench",
                       "LANGFUSE_BASE_URL": args.collector, "LANGFUSE_HOST": args.collector})
    originals = common.original_creates()

    from importlib.metadata import version

    from langfuse import get_client
    from langfuse.openai import OpenAI  # noqa: F401 - the import is what patches openai (the documented drop-in)

    langfuse = get_client()
    client = common.inprocess_client()
    aclient = common.inprocess_client(is_async=True)
    bare, abare = common.unpatched(client, originals), common.unpatched(aclient, originals)

    sync_pairs = {w: (lambda f=f: f(bare), lambda f=f: f(client)) for w, f in common.SYNC_WORKLOADS.items()}
    async_pairs = {"chat": (lambda: common.achat(abare), lambda: common.achat(aclient))}
    result = common.run_peer("langfuse", sync_pairs, async_pairs, n=args.calls, cpu_calls=args.cpu_calls,
                             cpu_block_count=args.cpu_blocks, settle=langfuse.flush,
                             info={"package": "langfuse", "version": version("langfuse"),
                                   "export": f"OTLP/HTTP batches to a local accept-all endpoint ({args.collector})"})
    langfuse.flush()
    common.emit_peer_result(result)


if __name__ == "__main__":
    main()
