"""docs/fake-server.md: its Python example runs as written, and its fault table names every fault."""

from __future__ import annotations

import re
from pathlib import Path

from llmmetrics.fake import FAULT_NAMES

DOC = Path(__file__).resolve().parents[2] / "docs" / "fake-server.md"


def test_the_python_example_runs_as_pasted() -> None:
    """The example starts a server and calls it with the real openai and anthropic clients without error."""
    [example] = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    namespace: dict[str, object] = {}
    exec(compile(example, str(DOC), "exec"), namespace)  # noqa: S102 - the documentation's own example
    paths = [r.path for r in namespace["server"].requests]
    assert paths[:2] == ["/v1/chat/completions", "/v1/messages"] and paths[2].endswith(":rawPredict")


def test_the_fault_table_lists_every_fault() -> None:
    """Each fault the server knows has its row in the table of what the clients raise."""
    rows = set(re.findall(r"^\| `(\w+)` \|", DOC.read_text(), re.M))
    assert set(FAULT_NAMES) <= rows
