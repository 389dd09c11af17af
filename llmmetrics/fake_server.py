"""Deprecated: the fake LLM server moved to :mod:`llmmetrics.fake`; this alias goes away in the next release.

``from llmmetrics.fake_server import FakeLLMServer`` and ``python -m llmmetrics.fake_server`` keep working until
then; use ``from llmmetrics.fake import FakeLLMServer`` and ``llmmetrics fake-server``.
"""

import sys

from .fake import FAULT_HEADER, FAULT_NAMES, FakeLLMServer, FaultPlan, LatencyModel, RecordedRequest
from .fake.cli import main

__all__ = ["FAULT_HEADER", "FAULT_NAMES", "FakeLLMServer", "FaultPlan", "LatencyModel", "RecordedRequest", "main"]

if __name__ == "__main__":
    sys.exit(main())
