"""``POST /v1/embeddings``: unit vectors that depend only on the input, as floats or base64 float32.

Equal inputs embed equally; ``dimensions`` sets the length (default ``embedding_dimensions``); token-array
input counts one token per id, text ~4 characters a token. The ``openai`` client asks for base64 by default
and decodes it; both encodings carry the same float32 numbers.
"""

from __future__ import annotations

import functools
import base64
import hashlib
import math
import random
import struct
from typing import Any

import orjson

from . import openai_api as api
from .delivery import deliver
from .http import Exchange
from .routes import Routes
from .workload import Workload

__all__ = ["register"]


def register(routes: Routes, workload: Workload) -> None:
    routes.add("POST", "/v1/embeddings", functools.partial(_embeddings, workload=workload), dialect=api.DIALECT)


async def _embeddings(exchange: Exchange, workload: Workload) -> None:
    draw = await api.prepare(exchange, workload, ("model", "input"))
    if draw is None:
        return
    body = exchange.body
    inputs = body["input"]
    if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
        inputs = [inputs]
    if not isinstance(inputs, list) or not all(isinstance(x, (str, list)) and x for x in inputs):
        await api.send_error(exchange, 400, "'$.input' is invalid: expected a non-empty string, array of strings, "
                             "array of tokens or array of token arrays.",
                             type="invalid_request_error", param="input", code="invalid_value")
        return
    dimensions = body.get("dimensions")
    dimensions = dimensions if isinstance(dimensions, int) and dimensions > 0 else workload.embedding_dimensions
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    tokens = 0
    for index, text in enumerate(inputs):
        tokens += max(1, math.ceil(len(text) / 4)) if isinstance(text, str) else len(text)
        vector = _embed(text, dimensions)
        packed: Any = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode() if as_base64 else vector
        data.append({"object": "embedding", "index": index, "embedding": packed})
    answer: dict[str, Any] = {"object": "list", "data": data, "model": body["model"]}
    if draw.fault != "missing_usage":
        answer["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    await deliver(exchange, orjson.dumps(answer), draw, delay=draw.first_token_delay)


def _embed(text: str | list[int], dimensions: int) -> list[float]:
    """A unit vector that depends only on the input, so equal texts embed equally."""
    key = text.encode() if isinstance(text, str) else orjson.dumps(text)
    rng = random.Random(hashlib.blake2b(key, digest_size=8).digest())
    vector = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    # Round through float32 so the float and base64 encodings carry the same numbers.
    return list(struct.unpack(f"<{dimensions}f", struct.pack(f"<{dimensions}f", *(v / norm for v in vector))))
