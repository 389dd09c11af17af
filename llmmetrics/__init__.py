"""llmmetrics: see what your LLM calls do in production.

Latency, tokens, cost and errors as Prometheus metrics; every call's full record as one JSON trace line
(a local file by default, or Grafana Loki).

>>> import openai, llmmetrics
>>> llmmetrics.configure(service="checkout")                       # doctest: +SKIP
>>> client = llmmetrics.instrument(openai.OpenAI())                # doctest: +SKIP
>>> llmmetrics.start_http_server(8000)                             # doctest: +SKIP
>>> with llmmetrics.bind_context(user_id="u-42"):                  # doctest: +SKIP
...     with llmmetrics.trace_run("support-agent"):
...         client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
"""

from __future__ import annotations

import logging

from .config import Config, ConfigError
from .context import bind_context, propagate, trace_run
from .exposition import make_asgi_app, make_wsgi_app, start_http_server
from .instrumentation import call_llm_with_tracing, instrument, is_instrumented, uninstrument
from .runtime import configure, runtime, shutdown

#: The package version; pyproject.toml reads it from here (``llmmetrics --version`` prints it).
__version__ = "0.2.0"

_log = logging.getLogger("llmmetrics")

__all__ = [
    "__version__",
    "Config",
    "ConfigError",
    "bind_context",
    "call_llm_with_tracing",
    "configure",
    "flush",
    "instrument",
    "is_instrumented",
    "make_asgi_app",
    "make_wsgi_app",
    "propagate",
    "runtime",
    "shutdown",
    "start_http_server",
    "trace_run",
    "uninstrument",
]


def flush(timeout: float = 5.0) -> bool:
    """Wait up to ``timeout`` seconds for every emitted trace record to reach its sinks; False if they did not.

    Never raises: a runtime that cannot be built (reported where it failed) has nothing to flush.
    """
    try:
        return runtime().flush(timeout)
    except Exception:
        _log.debug("llmmetrics: flush found no runtime to flush", exc_info=True)
        return False
