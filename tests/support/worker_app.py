"""A small LLM-backed ASGI app, deployed the way docs/multiprocess.md says, for the multi-worker tests.

Plain ASGI (no framework: what is under test is the server's worker processes, not a router). Each worker
process imports this module, so each configures llmmetrics from the environment (``LLMMETRICS_TRACE_FILE``
with ``{pid}``), instruments one ``AsyncOpenAI`` client pointed at ``FAKE_LLM_URL``, and serves:

- ``GET /chat?model=M``: one chat completion under ``bind_context`` and ``trace_run``; answers
  ``{"pid", "trace_id", "model"}``, so a test knows which worker made which call;
- ``GET /metrics``: ``llmmetrics.make_asgi_app()``, every worker's values and exemplars merged.

At lifespan startup a worker writes an empty file named for its pid into ``WORKER_MARKERS``, so a test can
tell the workers apart from their server's other processes.

Run: ``gunicorn -k uvicorn.workers.UvicornWorker -w 3 -c tests/support/gunicorn_conf.py
tests.support.worker_app:app`` or ``uvicorn --workers 3 tests.support.worker_app:app``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import openai

import llmmetrics

llmmetrics.configure()
client = llmmetrics.instrument(openai.AsyncOpenAI(base_url=os.environ["FAKE_LLM_URL"], api_key="sk-worker-app",
                                                  max_retries=0, timeout=30))
metrics = llmmetrics.make_asgi_app()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
    elif scope["path"] == "/metrics":
        await metrics(scope, receive, send)
    elif scope["path"] == "/chat":
        query = parse_qs(scope.get("query_string", b"").decode())
        model = query.get("model", ["gpt-4o-mini"])[0]
        with llmmetrics.bind_context(request_id=query.get("request_id", [None])[0]), \
                llmmetrics.trace_run("chat-endpoint") as run:
            await client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        await _respond(send, 200, {"pid": os.getpid(), "trace_id": run.trace_id, "model": model})
    else:
        await _respond(send, 404, {"error": "not found"})


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            Path(os.environ["WORKER_MARKERS"], str(os.getpid())).touch()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            llmmetrics.flush(5)
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _respond(send: Any, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})
