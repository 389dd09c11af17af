"""Trace records through the standard ``logging`` module (logger ``llmmetrics.trace``), and loguru.

For teams whose log pipeline already ships JSON logs: enable with ``Config(log_records=True)`` and attach
:func:`json_formatter` (python-json-logger) to a handler, and each record comes out as the same JSON object
the file and Loki sinks write. Records are logged from a worker thread, so a slow handler never delays a call.

>>> handler = logging.StreamHandler()                       # doctest: +SKIP
>>> handler.setFormatter(json_formatter())                  # doctest: +SKIP
>>> logging.getLogger("llmmetrics.trace").addHandler(handler)  # doctest: +SKIP

With loguru, ``logger.add(sys.stderr, format=loguru_format)`` prints the same JSON for every record that
``LoggingSink(..., loguru_logger=logger)`` sends (the record is bound as ``extra["llm_trace"]``).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from ..metrics import SelfMetrics
from ..record import Record
from .worker import QueuedSink

__all__ = ["LoggingSink", "json_formatter", "loguru_format"]

TRACE_LOGGER = "llmmetrics.trace"
#: LogRecord attributes that a trace field would collide with; python-json-logger renders them itself.
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class LoggingSink(QueuedSink):
    name = "logging"

    def __init__(self, self_metrics: SelfMetrics, *, logger: logging.Logger | None = None,
                 loguru_logger: Any = None) -> None:
        self._logger = logger or logging.getLogger(TRACE_LOGGER)
        self._loguru = loguru_logger
        super().__init__(self_metrics)

    def deliver(self, batch: list[Record]) -> None:
        for record in batch:
            fields = orjson.loads(record.line)
            if self._loguru is not None:
                self._loguru.bind(llm_trace=fields).log("ERROR" if record.level == "error" else "INFO", "llm_trace")
            if self._logger.isEnabledFor(logging.INFO):
                extra = {(f"trace_{k}" if k in _RESERVED else k): v for k, v in fields.items()}
                self._logger.log(logging.ERROR if record.level == "error" else logging.INFO, "llm_trace", extra=extra)


def json_formatter(**kwargs: Any) -> logging.Formatter:
    """A python-json-logger formatter that renders trace fields as top-level JSON keys."""
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter("%(message)s", rename_fields={"message": "event"}, **kwargs)


def loguru_format(message: Any) -> str:
    """loguru format callable: the bound trace record as one JSON line."""
    trace = message["extra"].get("llm_trace")
    if trace is None:
        return "{message}\n"
    return orjson.dumps(trace).decode().replace("{", "{{").replace("}", "}}") + "\n"
