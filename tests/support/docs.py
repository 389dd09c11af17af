"""Reading the documentation as tests need it: fenced code blocks, by language, in order."""

from __future__ import annotations


def fenced_blocks(text: str, language: str = "") -> list[str]:
    """The fenced blocks of ``text`` whose info string is ``language`` ('' for plain ones), in order."""
    found: list[str] = []
    current: list[str] = []
    opened: str | None = None
    for line in text.splitlines():
        if opened is None and line.startswith("```"):
            opened, current = line[3:].strip(), []
        elif opened is not None and line == "```":
            if opened == language:
                found.append("\n".join(current))
            opened = None
        elif opened is not None:
            current.append(line)
    return found
