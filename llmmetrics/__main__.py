"""``python -m llmmetrics`` is the ``llmmetrics`` command."""

import sys

from .cli import main

sys.exit(main())
