"""How an answer goes out over time: the latency draw's pacing, and the faults that strike the transport.

Every wire API builds its answer (a body, or a list of stream frames) and hands it here, so a fault means the
same thing on every API:

- ``timeout``: nothing at all for ``stall_seconds`` (before the head), then the normal answer.
- ``stall``: the head (and a stream's first frame) at once, then nothing for ``stall_seconds``, then the rest.
- ``reset``: a TCP reset instead of the answer; in a stream, right after the first frame.
- ``invalid_json``: a body cut off mid-object; in a stream, the second frame's JSON cut off.
- ``stream_error``: in a stream, the first frame and then the wire API's in-stream error event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .http import Exchange, Headers
from .workload import Draw

__all__ = ["SSE", "cut_sse_event", "deliver", "deliver_stream", "hold_for_timeout"]

SSE = "text/event-stream; charset=utf-8"


async def hold_for_timeout(draw: Draw) -> None:
    """A ``timeout`` fault: wait before anything is sent, so a client with a shorter timeout gives up."""
    if draw.fault == "timeout":
        await asyncio.sleep(draw.stall_seconds)


async def deliver(exchange: Exchange, payload: bytes, draw: Draw, *, delay: float, status: int = 200,
                  content_type: str = "application/json", headers: Headers = ()) -> None:
    """A whole answer after ``delay`` seconds, with the request's transport fault applied."""
    if delay:
        await asyncio.sleep(delay)
    fault = draw.fault
    if fault == "reset":
        await exchange.reset()
    if fault == "invalid_json":
        payload = payload[: len(payload) // 2]
    await exchange.respond(status, payload, content_type=content_type, headers=headers,
                           hold_body=draw.stall_seconds if fault == "stall" else 0.0)


def cut_sse_event(frame: bytes) -> bytes:
    """The event with its ``data:`` JSON cut in half, still ended by a blank line so the client parses it."""
    start = frame.index(b"data: ") + 6
    end = len(frame) - 2
    return frame[: start + (end - start) // 2] + b"\n\n"


async def deliver_stream(exchange: Exchange, frames: list[bytes], draw: Draw, *, content_type: str = SSE,
                         headers: Headers = (), error_frame: bytes | None = None,
                         cut: Callable[[bytes], bytes] = cut_sse_event) -> None:
    """A chunked stream: the head at once, the first frame after the time to first token, the rest a token's
    time apart; without delays the whole answer goes out in one write. ``error_frame`` is what a
    ``stream_error`` sends after the first frame; ``cut`` spoils a frame for ``invalid_json``."""
    fault = draw.fault
    if fault == "invalid_json" and len(frames) > 1:
        frames = [frames[0], cut(frames[1]), *frames[2:]]
    elif fault == "stream_error" and error_frame is not None:
        frames = [frames[0], error_frame]
    breaks = fault in ("reset", "stall")
    first_delay, gap = draw.first_token_delay, draw.per_token_delay
    if not (first_delay or gap or breaks):
        await exchange.start_stream(content_type, headers=headers, body=b"".join(frames), end=True)
        return
    await exchange.start_stream(content_type, headers=headers)
    if first_delay:
        await asyncio.sleep(first_delay)
    for index, frame in enumerate(frames):
        if index and gap:
            await asyncio.sleep(gap)
        await exchange.send_chunk(frame)
        if index == 0 and fault == "reset":
            await exchange.reset()
        if index == 0 and fault == "stall":
            await asyncio.sleep(draw.stall_seconds)
    await exchange.end_stream()
