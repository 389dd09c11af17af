"""Anthropic's Messages API: ``POST /v1/messages`` plain and streamed, ``POST /v1/messages/count_tokens``, and the
same on Google Vertex AI's routes, answered as the real ``anthropic`` client parses them.

Routes. First-party (``anthropic.Anthropic(base_url=server.url)``): ``/v1/messages`` (``?beta=true`` too) and
``/v1/messages/count_tokens``; the ``anthropic-version`` header is required (any ``YYYY-MM-DD`` date).
Vertex (``anthropic.AnthropicVertex(base_url=server.base_url, region=..., project_id=..., access_token=...)``):
``/v1/projects/{project}/locations/{region}/publishers/anthropic/models/{model}:rawPredict`` and
``:streamRawPredict``, the model in the path (``claude-sonnet-4-5@20250929`` answers as
``claude-sonnet-4-5-20250929``), ``anthropic_version`` required in the body; message ids are ``msg_vrtx_01…``,
answers carry no ``request-id``, and a 429 is Google's ``RESOURCE_EXHAUSTED`` body.

Answers. Without thinking or tools an answer is one text block of 20–80 tokens (``answer_tokens=``), one
filler word a token, ``stop_reason: "end_turn"``. When client tools are offered (``tools=[{"name", ...,
"input_schema"}]``, ``tool_choice`` not ``{"type": "none"}``) the model says one short sentence and calls the
chosen tool (``tool_choice={"type": "tool", "name": ...}``) or the first one, with arguments that fit its
``input_schema``, ``stop_reason: "tool_use"`` — unless the last user message carries a ``tool_result`` block
(and ``tool_choice`` is ``auto``), so an agent loop runs call → result → answer. ``thinking={"type":
"enabled", "budget_tokens": N}`` (or ``"adaptive"``) puts a thinking block first: 1–3× the answer's
length, at most ``budget_tokens``, with a ``signature`` (its text is empty with ``display: "omitted"``). When
thinking + answer exceed ``max_tokens``, thinking gets at most half, the answer the rest as text, and
``stop_reason`` is ``"max_tokens"``.

A stream is ``message_start`` (usage with ``output_tokens: 1``), then per block ``content_block_start``,
its deltas (``text_delta`` one token each; ``thinking_delta`` eight tokens each, then one ``signature_delta``;
``input_json_delta`` of 8 characters each after an empty one), ``content_block_stop``; one ``ping`` after the
first block's start; then ``message_delta`` with ``stop_reason`` and the cumulative usage, and
``message_stop``.

Usage, deterministically:

- Prompt tokens are estimated per block in the order the API caches them — each tool definition, each
  ``system`` block, each message's content blocks — at ~4 characters a token, 85 an image, 4 of framing per
  message, plus 3 to prime the answer.
- A block carrying ``cache_control`` is a cache breakpoint (a top-level ``cache_control`` makes the last message
  block one); breakpoints whose prefix is under 1024 tokens are ignored. The server remembers each cached
  prefix (per model and platform, the newest 4096). A request *reads* the longest remembered prefix that ends
  at any block boundary up to its last breakpoint, and *creates* the rest up to that breakpoint: the first
  request with a prefix reports ``cache_creation_input_tokens``, the next ones ``cache_read_input_tokens``.
  ``cache_creation`` splits creation by each breakpoint's ``ttl`` (``5m`` unless ``1h``). TTLs never expire.
- ``input_tokens`` is the rest: total − read − creation (the three together are the prompt).
- ``output_tokens`` counts thinking and visible tokens; with thinking on, ``output_tokens_details.thinking_tokens``
  says how many were thinking.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import math
import secrets
from dataclasses import dataclass, field
from typing import Any

import orjson

from . import anthropic_api as api
from .content import fake_arguments, filler_words, split_pieces, text_chars
from .delivery import deliver, deliver_stream
from .http import Exchange, sse
from .routes import Routes
from .workload import Draw, Workload

__all__ = ["SNAPSHOTS", "PromptCache", "Reply", "message_events", "message_object", "register", "reply_for"]

SNAPSHOTS = {
    "claude-opus-4-5": "claude-opus-4-5-20251101",
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
    "claude-opus-4-1": "claude-opus-4-1-20250805",
    "claude-opus-4-0": "claude-opus-4-20250514",
    "claude-sonnet-4-0": "claude-sonnet-4-20250514",
    "claude-3-7-sonnet-latest": "claude-3-7-sonnet-20250219",
    "claude-3-5-haiku-latest": "claude-3-5-haiku-20241022",
}
_MIN_CACHEABLE_TOKENS = 1024
_VERTEX = "/v1/projects/{project}/locations/{region}/publishers/anthropic/models/{model}:"


def register(routes: Routes, workload: Workload) -> None:
    first_party_cache, vertex_cache = PromptCache(), PromptCache()

    async def messages(exchange: Exchange) -> None:
        draw = await api.prepare(exchange, workload, api.DIALECT, first_party=True)
        if draw is not None:
            model = exchange.body["model"]
            await _answer(exchange, draw, first_party_cache, api.DIALECT, SNAPSHOTS.get(model, model))

    async def count_tokens(exchange: Exchange) -> None:
        await _count_tokens(exchange, api.DIALECT)

    async def vertex(exchange: Exchange) -> None:
        model = exchange.params["model"]
        if model == "count-tokens":
            await _count_tokens(exchange, api.VERTEX_DIALECT)
            return
        draw = await api.prepare(exchange, workload, api.VERTEX_DIALECT, first_party=False)
        if draw is not None:
            name, _, date = model.partition("@")
            await _answer(exchange, draw, vertex_cache, api.VERTEX_DIALECT,
                          f"{name}-{date}" if date else SNAPSHOTS.get(name, name))

    routes.add("POST", "/v1/messages", messages, dialect=api.DIALECT)
    routes.add("POST", "/v1/messages/count_tokens", count_tokens, dialect=api.DIALECT)
    routes.add("POST", _VERTEX + "rawPredict", vertex, dialect=api.VERTEX_DIALECT)
    routes.add("POST", _VERTEX + "streamRawPredict", vertex, dialect=api.VERTEX_DIALECT)


async def _answer(exchange: Exchange, draw: Draw, cache: PromptCache, dialect: api.Dialect, model: str) -> None:
    body = exchange.body
    reply = reply_for(body, draw, cache.account(model, body))
    message = message_object(dialect.message_id_prefix, model, reply)
    if body.get("stream"):
        frames = [sse(event, event["type"]) for event in message_events(message, reply)]
        await deliver_stream(exchange, frames, draw, error_frame=api.stream_error_frame())
        return
    await deliver(exchange, orjson.dumps(message), draw,
                  delay=draw.first_token_delay + draw.per_token_delay * reply.output_tokens)


async def _count_tokens(exchange: Exchange, dialect: api.Dialect) -> None:
    body = exchange.body
    messages = body.get("messages") if isinstance(body, dict) else None
    if not (isinstance(messages, list) and messages and all(isinstance(m, dict) for m in messages)):
        await dialect.send_error(exchange, 400, "messages: Field required")
        return
    await exchange.respond_json(200, {"input_tokens": PromptTokens.of(_prompt_blocks(body)).total})


# ----------------------------------------------------------------------------------------------------------
# The prompt: tokens and cache
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Block:
    key: bytes  # what the cache compares: where the block sits (tools, system, a message's role) and its content
    tokens: int
    ttl: str | None  # the block's cache breakpoint ttl, None when it is not a breakpoint


def _block(place: str, content: Any, framing: int = 0) -> _Block:
    marker = content.get("cache_control") if isinstance(content, dict) else None
    if isinstance(content, dict) and marker is not None:
        content = {k: v for k, v in content.items() if k != "cache_control"}
    chars, images = text_chars(content)
    ttl = (marker.get("ttl") or "5m") if isinstance(marker, dict) else None
    key = orjson.dumps([place, framing, content], option=orjson.OPT_SORT_KEYS)
    return _Block(key, framing + 85 * images + math.ceil(chars / 4), ttl)


def _prompt_blocks(body: dict[str, Any]) -> list[_Block]:
    """The prompt's blocks in the order the API caches them: tools, system, messages."""
    blocks = [_block("tool", tool) for tool in body.get("tools") or ()]
    system = body.get("system")
    blocks += [_block("system", part) for part in (system if isinstance(system, list) else [system] if system else [])]
    for message in body["messages"]:
        content = message.get("content")
        parts = content if isinstance(content, list) and content else [content or ""]
        blocks += [_block(message.get("role", ""), part, 4 if index == 0 else 0) for index, part in enumerate(parts)]
    top = body.get("cache_control")
    if isinstance(top, dict) and blocks:
        last = blocks[-1]
        blocks[-1] = _Block(last.key, last.tokens, top.get("ttl") or "5m")
    return blocks


@dataclass(frozen=True)
class PromptTokens:
    """A prompt's tokens split as Anthropic reports them."""

    total: int
    read: int = 0
    created: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, blocks: list[_Block]) -> PromptTokens:
        return cls(3 + sum(block.tokens for block in blocks))

    @property
    def uncached(self) -> int:
        return self.total - self.read - sum(self.created.values())


class PromptCache:
    """The prompt prefixes one platform has cached, by a digest of the model and the blocks (newest 4096 kept)."""

    def __init__(self, capacity: int = 4096) -> None:
        self._prefixes: collections.OrderedDict[bytes, None] = collections.OrderedDict()
        self._capacity = capacity

    def account(self, model: str, body: dict[str, Any]) -> PromptTokens:
        """Split the request's prompt into uncached, read and created tokens, and remember what it caches."""
        blocks = _prompt_blocks(body)
        prompt = PromptTokens.of(blocks)
        ends: list[int] = []  # tokens up to and including each block
        running = 0
        for block in blocks:
            running += block.tokens
            ends.append(running)
        breakpoints = [i for i, block in enumerate(blocks) if block.ttl and ends[i] >= _MIN_CACHEABLE_TOKENS]
        if not breakpoints:
            return prompt
        digest = hashlib.blake2b(model.encode(), digest_size=16)
        digests = []
        for block in blocks[: breakpoints[-1] + 1]:
            digest.update(block.key)
            digests.append(digest.copy().digest())
        read = next((ends[i] for i in range(breakpoints[-1], -1, -1) if digests[i] in self._prefixes), 0)
        created: dict[str, int] = {}
        start = read
        for i in breakpoints:
            if ends[i] > start:
                ttl = blocks[i].ttl or "5m"
                created[ttl] = created.get(ttl, 0) + ends[i] - start
                start = ends[i]
            self._prefixes[digests[i]] = None
            self._prefixes.move_to_end(digests[i])
        while len(self._prefixes) > self._capacity:
            self._prefixes.popitem(last=False)
        return PromptTokens(prompt.total, read, created)


# ----------------------------------------------------------------------------------------------------------
# The answer
# ----------------------------------------------------------------------------------------------------------


@dataclass
class Reply:
    """One answer: its content blocks, each with the deltas that stream it, and how it ended."""

    blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]]
    stop_reason: str
    output_tokens: int
    thinking_tokens: int | None  # None when thinking was off
    prompt: PromptTokens
    usage: bool = True  # False under the missing_usage fault


def reply_for(body: dict[str, Any], draw: Draw, prompt: PromptTokens) -> Reply:
    """What the fake model answers to a (validated) Messages request."""
    rng = draw.rng
    max_tokens = body["max_tokens"]
    thinking = body.get("thinking")
    thinking_on = isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")
    thought = 0
    if thinking_on:
        thought = draw.answer_tokens * rng.randint(1, 3)
        if thinking.get("type") == "enabled":
            thought = min(thought, thinking["budget_tokens"])
    tool = _tool_to_call(body)
    arguments = fake_arguments(rng, tool.get("input_schema")) if tool else ""
    preamble = ["I'll", " use", " the", f" {tool.get('name')}", " tool."] if tool else []
    visible = len(preamble) + max(1, math.ceil(len(arguments) / 4)) + 7 if tool else draw.answer_tokens
    stop_reason = "tool_use" if tool else "end_turn"
    if thought + visible > max_tokens:
        thought = min(thought, max_tokens // 2)
        visible, tool, stop_reason = max_tokens - thought, None, "max_tokens"
    blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    if thinking_on:
        blocks.append(_thinking_block(filler_words(rng, thought), thinking.get("display") == "omitted"))
    if tool:
        blocks.append(_text_block(preamble))
        blocks.append(_tool_use_block(tool["name"], arguments))
    else:
        blocks.append(_text_block(filler_words(rng, visible)))
    return Reply(blocks, stop_reason, thought + visible, thought if thinking_on else None, prompt,
                 usage=draw.fault != "missing_usage")


def _tool_to_call(body: dict[str, Any]) -> dict[str, Any] | None:
    """The client tool the model calls, or None: tools offered and allowed, and no tool result just received."""
    tools = [tool for tool in body.get("tools") or () if tool.get("type") in (None, "custom")]
    choice = body.get("tool_choice") if isinstance(body.get("tool_choice"), dict) else {"type": "auto"}
    if not tools or choice.get("type") == "none":
        return None
    if choice.get("type") == "auto":
        last = body["messages"][-1]
        content = last.get("content")
        if last.get("role") == "user" and isinstance(content, list) and any(
                isinstance(part, dict) and part.get("type") == "tool_result" for part in content):
            return None
    wanted = choice.get("name") if choice.get("type") == "tool" else None
    return next((tool for tool in tools if tool.get("name") == wanted), tools[0])


def _text_block(pieces: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return {"type": "text", "text": "".join(pieces)}, [{"type": "text_delta", "text": piece} for piece in pieces]


def _thinking_block(pieces: list[str], omitted: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    signature = base64.b64encode(secrets.token_bytes(128)).decode()
    text = "" if omitted else "".join(pieces)
    deltas = [] if omitted else [{"type": "thinking_delta", "thinking": "".join(pieces[i:i + 8])}
                                 for i in range(0, len(pieces), 8)]
    deltas.append({"type": "signature_delta", "signature": signature})
    return {"type": "thinking", "thinking": text, "signature": signature}, deltas


def _tool_use_block(name: str, arguments: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    block = {"type": "tool_use", "id": api.new_id("toolu_01"), "name": name, "input": orjson.loads(arguments)}
    pieces = ["", *split_pieces(arguments, 8)]
    return block, [{"type": "input_json_delta", "partial_json": piece} for piece in pieces]


def _usage(reply: Reply, form: str) -> dict[str, Any]:
    """Usage as a ``message`` carries it, as ``message_start`` does (one output token so far), or as the
    ``delta`` of ``message_delta`` (cumulative counts only)."""
    prompt = reply.prompt
    usage: dict[str, Any] = {"input_tokens": prompt.uncached,
                             "cache_creation_input_tokens": sum(prompt.created.values()),
                             "cache_read_input_tokens": prompt.read}
    if form != "delta":
        usage["cache_creation"] = {"ephemeral_5m_input_tokens": prompt.created.get("5m", 0),
                                   "ephemeral_1h_input_tokens": prompt.created.get("1h", 0)}
    usage["output_tokens"] = 1 if form == "start" else reply.output_tokens
    if form != "start" and reply.thinking_tokens is not None:
        usage["output_tokens_details"] = {"thinking_tokens": reply.thinking_tokens}
    if form != "delta":
        usage["service_tier"] = "standard"
    return usage


def message_object(id_prefix: str, model: str, reply: Reply) -> dict[str, Any]:
    """The whole ``Message`` a plain call answers with."""
    message: dict[str, Any] = {"id": api.new_id(id_prefix), "type": "message", "role": "assistant", "model": model,
                               "content": [block for block, _ in reply.blocks], "stop_reason": reply.stop_reason,
                               "stop_sequence": None}
    if reply.usage:
        message["usage"] = _usage(reply, "message")
    return message


def message_events(message: dict[str, Any], reply: Reply) -> list[dict[str, Any]]:
    """The stream of a message, as event objects (each one's ``type`` is also its SSE event name)."""
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    start.pop("usage", None)
    if reply.usage:
        start["usage"] = _usage(reply, "start")
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for index, (block, deltas) in enumerate(reply.blocks):
        events.append({"type": "content_block_start", "index": index, "content_block": _empty(block)})
        if index == 0:
            events.append({"type": "ping"})
        events += [{"type": "content_block_delta", "index": index, "delta": delta} for delta in deltas]
        events.append({"type": "content_block_stop", "index": index})
    delta: dict[str, Any] = {"type": "message_delta", "delta": {"stop_reason": reply.stop_reason,
                                                                "stop_sequence": None}}
    if reply.usage:
        delta["usage"] = _usage(reply, "delta")
    events += [delta, {"type": "message_stop"}]
    return events


def _empty(block: dict[str, Any]) -> dict[str, Any]:
    """A block as ``content_block_start`` announces it, before its deltas."""
    if block["type"] == "text":
        return {"type": "text", "text": ""}
    if block["type"] == "thinking":
        return {"type": "thinking", "thinking": "", "signature": ""}
    return {**block, "input": {}}
