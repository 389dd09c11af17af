"""A fake LLM provider on 127.0.0.1 that speaks OpenAI's and Anthropic's wire APIs (Anthropic's also as Google
Vertex AI and Amazon Bedrock serve it), for the demo, the tests and the benchmarks.

Why it exists: the instrumentation must be exercised through the *real* ``openai`` and ``anthropic`` clients
over a *real* socket — streaming framing, error classes, retries and timeouts included — without a network or
an API key. So this server answers as api.openai.com and api.anthropic.com do, closely enough that each client
parses every answer into its own types, and it can be told to misbehave in each way a real provider does.

Example::

    import anthropic, openai
    from llmmetrics.fake import FakeLLMServer

    with FakeLLMServer(seed=7) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        reply.model                # "gpt-4o-mini-2024-07-18"
        claude = anthropic.Anthropic(base_url=server.url, api_key="test", max_retries=0)
        message = claude.messages.create(model="claude-haiku-4-5", max_tokens=256,
                                         messages=[{"role": "user", "content": "hi"}])
        message.usage.output_tokens

Wire APIs, one module each (see its docstring for the answers it gives):

=========================  =================================================  ==============================
module                     routes                                             client ``base_url``
=========================  =================================================  ==============================
``openai_chat``            ``POST /v1/chat/completions``                      ``server.base_url``
``openai_responses``       ``POST /v1/responses``                             ``server.base_url``
``openai_embeddings``      ``POST /v1/embeddings``                            ``server.base_url``
``openai_models``          ``GET /v1/models``, ``GET /v1/models/{id}``        ``server.base_url``
``anthropic_messages``     ``POST /v1/messages``, ``.../count_tokens``;       ``server.url`` (``Anthropic``);
                           Vertex ``.../models/{model}:rawPredict`` and       ``server.base_url``
                           ``:streamRawPredict``                              (``AnthropicVertex``)
``bedrock``                ``POST /model/{model}/invoke``,                    ``server.url``
                           ``.../invoke-with-response-stream``                (``AnthropicBedrock``)
=========================  =================================================  ==============================

Anything else gets OpenAI's 404 error shape.

Faults. A :class:`FaultPlan` gives each fault a share of requests (drawn from the seeded generator); one request
can force its outcome with the header ``x-fake-fault: <name>`` (``extra_headers=`` in either client), which
overrides the plan; ``x-fake-fault: none`` means no fault whatever the plan says. Faults apply to the POST
endpoints that generate answers. Each means the same on every API (``delivery`` and the ``openai_api`` /
``anthropic_api`` / ``bedrock`` docstrings say what each client raises):

- ``rate_limit`` (429), ``server_error`` (500), ``overloaded`` (OpenAI and Bedrock 503, Anthropic 529),
  ``bad_request`` (400): the provider's error status and body.
- ``timeout``: nothing for ``FaultPlan.timeout_seconds``, then the normal answer (a slow first byte).
- ``stall``: the head, and a stream's first event, at once; then nothing for ``timeout_seconds``; then the rest.
- ``reset``: a TCP reset instead of the answer; in a stream, right after the first event.
- ``stream_error``: a stream's first event, then the provider's in-stream error event; a plain call gets the
  provider's own status for that error (OpenAI and Bedrock 500, Anthropic 529).
- ``invalid_json``: 200 with the body cut off mid-object; in a stream, the second event's JSON cut off.
- ``missing_usage``: a valid answer without usage.

Determinism: with ``seed`` set, answers (lengths, text, tool arguments, latencies, which requests fail) and the
prompt-cache accounting depend only on the seed and the order in which requests arrive; ids (request ids,
``chatcmpl-…``, ``msg_01…``, signatures) are always random, as they must be unique across runs.

Command line: ``llmmetrics fake-server --port 8080 --error-rate 0.05`` (or ``python -m llmmetrics.fake``)
prints the base URL and serves until Ctrl-C or SIGTERM; ``--help`` lists the latency and fault knobs.
"""

from .server import FakeLLMServer, RecordedRequest
from .workload import FAULT_HEADER, FAULT_NAMES, FaultPlan, LatencyModel

__all__ = ["FAULT_HEADER", "FAULT_NAMES", "FakeLLMServer", "FaultPlan", "LatencyModel", "RecordedRequest"]
