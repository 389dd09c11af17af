"""LiteLLM (``litellm.completion`` / ``litellm.responses``) vs the bare client, in this process.

LiteLLM is handed the same in-process ``openai`` client (its ``client=`` argument; for ``responses`` an HTTP
handler over the same fixed answers), so both sides reach the same answers; what differs is LiteLLM's own request mapping, response conversion, cost and logging
work. ``LITELLM_LOCAL_MODEL_COST_MAP`` keeps it from fetching its price map over the network.
Run by ``benchmarks/peers.py`` inside its own virtualenv; prints one ``RESULT {json}`` line.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # noqa: E402


def main() -> None:
    args = common.peer_args()
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    from importlib.metadata import version

    import litellm

    litellm.telemetry = False
    client = common.inprocess_client()
    aclient = common.inprocess_client(is_async=True)
    model = "openai/" + common.MODEL
    base = {"api_base": "http://bench.invalid/v1", "api_key": "sk-bench"}

    def chat() -> object:
        return litellm.completion(model=model, messages=common.MESSAGES, temperature=0.2, max_tokens=256,
                                  client=client, **base)

    def chat_stream() -> int:
        n = 0
        for _chunk in litellm.completion(model=model, messages=common.MESSAGES, stream=True, client=client, **base):
            n += 1
        return n

    # litellm.responses does not take an openai client: it gets its own HTTP handler over the same fixed
    # answers (httpx.MockTransport; the bare side uses the openai client's transport as everywhere)
    import httpx
    from litellm.llms.custom_httpx.http_handler import HTTPHandler

    answers = common.FixedAnswers()
    handler = HTTPHandler(client=httpx.Client(transport=httpx.MockTransport(answers.sync_handler(httpx))))

    def responses() -> object:
        return litellm.responses(model=model, input="My order 1234 has not arrived yet. What can I do?",
                                 instructions="You are a concise support assistant.", client=handler, **base)

    async def achat() -> object:
        return await litellm.acompletion(model=model, messages=common.MESSAGES, temperature=0.2, max_tokens=256,
                                         client=aclient, **base)

    sync_pairs = {"chat": (lambda: common.chat(client), chat),
                  "chat_stream": (lambda: common.chat_stream(client), chat_stream),
                  "responses": (lambda: common.responses(client), responses)}
    async_pairs = {"chat": (lambda: common.achat(aclient), achat)}
    result = common.run_peer("litellm", sync_pairs, async_pairs, n=args.calls, cpu_calls=args.cpu_calls,
                             cpu_block_count=args.cpu_blocks, settle=None,
                             info={"package": "litellm", "version": version("litellm"),
                                   "export": "none configured (LiteLLM's own mapping, cost and logging only)"})
    common.emit_peer_result(result)


if __name__ == "__main__":
    main()
