"""Pipelined answers with bounded flow control: the work of several requests of one stream in
flight at once, the answers in request order, and never more than a few requests read ahead."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from prometheus_client import Gauge

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")


async def in_order(
    requests: AsyncIterator[_Req],
    depth: int,
    start: Callable[[_Req], Awaitable[_Resp]],
    unanswered: Gauge,
) -> AsyncGenerator[_Resp, None]:
    """Runs `start(request)` for each request as soon as it is read, concurrently, and yields
    the answers in request order. At most `depth` requests are read and not yet answered (an
    answer counts once the consumer took it and came back for the next), and the next request
    is not read before: slow work or a slow consumer holds the sender back, through the
    transport's flow control, instead of piling requests up here. `unanswered` counts them.

    An error of the work of a request ends the answers when its turn comes, after the answers
    to the requests before it; an error reading ends them after every request read is answered.
    Ending or being closed early cancels the work still running."""
    slots = asyncio.Semaphore(depth)
    started: asyncio.Queue[asyncio.Future[_Resp] | None] = asyncio.Queue()
    held = 0  # requests read and not yet answered

    async def read() -> None:
        nonlocal held
        try:
            while True:
                await slots.acquire()
                request = await anext(requests, None)
                if request is None:
                    return
                held += 1
                unanswered.inc()
                started.put_nowait(asyncio.ensure_future(start(request)))
        finally:
            started.put_nowait(None)  # after the last request read: the answers end there

    reader = asyncio.create_task(read())
    work: asyncio.Future[_Resp] | None = None
    try:
        while (work := await started.get()) is not None:
            yield await work
            held -= 1
            unanswered.dec()
            slots.release()
        await reader  # raises what ended the reading, if not the end of the requests
    finally:
        unanswered.dec(held)
        running: list[asyncio.Future[Any]] = [reader, *_drain(started)]
        if work is not None:
            running.append(work)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)  # their rollbacks, if any


def _drain(queue: asyncio.Queue[asyncio.Future[_Resp] | None]) -> list[asyncio.Future[_Resp]]:
    found = []
    while not queue.empty():
        item = queue.get_nowait()
        if item is not None:
            found.append(item)
    return found
