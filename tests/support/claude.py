"""The three ways to call Claude's Messages API — ``create()``, ``create(stream=True)`` and the
``messages.stream()`` helper — run sync or async the same way, with what the user saw of each."""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

from tests.support.fake import CLAUDE

MESSAGES = [{"role": "user", "content": "Where is order #1234?"}]
#: how a test calls: plain create(), create(stream=True), or the messages.stream() helper
HOWS = ("create", "stream", "helper")


class Seen(NamedTuple):
    """What the user got: the message (the helper's final message; None for a raw stream) and the events."""

    message: Any
    events: list[Any]


def request(fault: str | None = None, **extra: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"model": CLAUDE, "max_tokens": 256, "messages": MESSAGES, **extra}
    if fault:
        kwargs["extra_headers"] = {"x-fake-fault": fault}
    return kwargs


def call_sync(client: Any, how: str, fault: str | None = None, **extra: Any) -> Seen:
    kwargs = request(fault, **extra)
    if how == "create":
        return Seen(client.messages.create(**kwargs), [])
    if how == "stream":
        return Seen(None, list(client.messages.create(stream=True, **kwargs)))
    with client.messages.stream(**kwargs) as stream:
        events = list(stream)
        return Seen(stream.get_final_message(), events)


def call_async(client: Any, how: str, fault: str | None = None, **extra: Any) -> Seen:
    async def run() -> Seen:
        kwargs = request(fault, **extra)
        if how == "create":
            return Seen(await client.messages.create(**kwargs), [])
        if how == "stream":
            return Seen(None, [event async for event in await client.messages.create(stream=True, **kwargs)])
        async with client.messages.stream(**kwargs) as stream:
            events = [event async for event in stream]
            return Seen(await stream.get_final_message(), events)
    return asyncio.run(run())


def call(client: Any, how: str, is_async: bool, fault: str | None = None, **extra: Any) -> Seen:
    return (call_async if is_async else call_sync)(client, how, fault, **extra)


def usage_seen(seen: Seen) -> dict[str, Any]:
    """The usage the user can read: the message's, or a raw stream's message_start completed by message_delta."""
    if seen.message is not None:
        return seen.message.usage.model_dump()
    start = next(e for e in seen.events if e.type == "message_start").message.usage.model_dump()
    delta = next(e for e in seen.events if e.type == "message_delta").usage.model_dump()
    return {**start, **{k: v for k, v in delta.items() if v is not None}}


def text_seen(seen: Seen) -> str:
    if seen.message is not None:
        return "".join(b.text for b in seen.message.content if b.type == "text")
    return "".join(e.delta.text for e in seen.events if e.type == "content_block_delta" and e.delta.type == "text_delta")
