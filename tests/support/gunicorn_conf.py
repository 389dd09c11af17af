"""gunicorn settings for a multi-worker llmmetrics app, as docs/multiprocess.md gives them.

The one llmmetrics needs: when a worker exits, its live gauges (``llm_in_flight_requests``, the export
queue gauges) stop counting. Counters, histograms and exemplars of dead workers need nothing: the first are
kept in the sum, the last age out past ``exemplar_horizon_seconds``.
"""

from prometheus_client import multiprocess


def child_exit(server, worker):  # noqa: ANN001 (gunicorn's hook signature)
    multiprocess.mark_process_dead(worker.pid)
