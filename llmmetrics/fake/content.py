"""What the fake model says, whatever the wire API: filler text, tool arguments that fit a schema, token estimates.

>>> estimate_prompt_tokens([{"role": "user", "content": "x" * 40}])
17
"""

from __future__ import annotations

import math
import random
from typing import Any

import orjson

__all__ = ["cached_prompt_tokens", "estimate_prompt_tokens", "fake_arguments", "filler_words", "split_pieces",
           "text_chars"]

_WORDS = (
    "the system reads each request and writes a short answer about latency tokens cost and errors so that "
    "every dashboard panel has data to show while the agent plans its next step calls a tool checks the "
    "result and reports back to the user with a clear summary of what happened during the run including "
    "retries timeouts cached prompts streaming chunks and the final usage numbers"
).split()

_IMAGE_TYPES = ("image_url", "input_image", "image")


def text_chars(value: Any) -> tuple[int, int]:
    """(characters of text, images) in a message structure; roles and type tags are not text."""
    if isinstance(value, str):
        return len(value), 0
    chars = images = 0
    if isinstance(value, dict):
        if value.get("type") in _IMAGE_TYPES:
            return 0, 1
        for key, item in value.items():
            if key not in ("role", "type"):
                c, i = text_chars(item)
                chars += c
                images += i
    elif isinstance(value, list):
        for item in value:
            c, i = text_chars(item)
            chars += c
            images += i
    return chars, images


def estimate_prompt_tokens(messages: Any, tools: Any = None) -> int:
    """~4 characters a token, 4 tokens of framing a message, 3 to prime the answer, 85 an image."""
    chars, images = text_chars(messages)
    tool_chars, _ = text_chars(tools) if tools else (0, 0)
    count = len(messages) if isinstance(messages, list) else 1
    return 3 + 4 * count + 85 * images + math.ceil((chars + tool_chars) / 4)


def cached_prompt_tokens(prompt_tokens: int) -> int:
    """OpenAI caches prompts of 1024+ tokens, in 128-token steps; below that nothing is cached."""
    return 0 if prompt_tokens < 1024 else prompt_tokens - (prompt_tokens - 1024) % 128


def filler_words(rng: random.Random, count: int) -> list[str]:
    """``count`` stream pieces (one token each) that join into readable filler text."""
    if count <= 0:
        return []
    words = rng.choices(_WORDS, k=count)
    words[0] = words[0].capitalize()
    pieces = [words[0]] + [" " + word for word in words[1:]]
    pieces[-1] += "."
    return pieces


def fake_arguments(rng: random.Random, parameters: Any) -> str:
    """JSON arguments that fit a function's JSON schema closely enough for an agent loop to go on."""
    if not isinstance(parameters, dict):
        return "{}"
    properties = parameters.get("properties") or {}
    args: dict[str, Any] = {}
    for name, schema in properties.items() if isinstance(properties, dict) else ():
        schema = schema if isinstance(schema, dict) else {}
        kind = schema.get("type")
        if schema.get("enum"):
            args[name] = schema["enum"][0]
        elif kind == "integer":
            args[name] = rng.randint(1, 100)
        elif kind == "number":
            args[name] = round(rng.uniform(0, 100), 2)
        elif kind == "boolean":
            args[name] = rng.random() < 0.5
        elif kind == "array":
            args[name] = []
        elif kind == "object":
            args[name] = {}
        else:
            args[name] = " ".join(rng.choices(_WORDS, k=2))
    return orjson.dumps(args).decode()


def split_pieces(text: str, size: int = 4) -> list[str]:
    """``text`` in pieces of ``size`` characters (one piece for an empty text), as streamed arguments arrive."""
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]
