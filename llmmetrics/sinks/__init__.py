"""Where rendered trace records go. A sink is anything with ``emit``, ``flush`` and ``close``.

``emit`` runs on the user's LLM call path: it must be O(1), never block on I/O, and never raise.
Delivery happens on the sink's own worker; ``flush``/``close`` wait for it with a bound.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..config import Config
from ..metrics import SelfMetrics
from ..record import Record

__all__ = ["Sink", "Record", "build_sinks"]


@runtime_checkable
class Sink(Protocol):
    name: str

    def emit(self, record: Record) -> None:
        """Hand over one record without blocking; count and log (never raise) if it cannot be kept."""

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; True when everything emitted so far was delivered."""

    def close(self, timeout: float) -> None:
        """Flush with a bounded wait and stop the worker. Never hangs."""


def build_sinks(config: Config, self_metrics: SelfMetrics) -> list[Sink]:
    """The sinks a Config asks for: the local file (default), Loki, and the ``logging`` module.

    All or none: if one cannot start, those already started are closed before the error propagates.
    """
    sinks: list[Sink] = []
    try:
        if config.trace_file:
            from .file import FileSink

            sinks.append(FileSink(config.trace_file, self_metrics, max_bytes=config.trace_file_max_bytes,
                                  backups=config.trace_file_backups, mode=config.trace_file_mode))
        if config.loki_url:
            from .loki import LokiSink

            sinks.append(LokiSink(config, self_metrics))
        if config.log_records:
            from .logging import LoggingSink

            sinks.append(LoggingSink(self_metrics))
    except BaseException:
        for sink in sinks:
            sink.close(1.0)
        raise
    return sinks
