"""``python -m llmmetrics.fake`` is ``llmmetrics fake-server``."""

import sys

from .cli import main

sys.exit(main())
