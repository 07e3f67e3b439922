"""Wakes conversion-event streams when their tenant's outbox grows.

One LISTEN connection per process; each stream has its own asyncio.Event. Streams also poll
(every POLL_SECONDS), so a lost notification or a broken LISTEN connection only delays them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict

import asyncpg

from journey_conversions.logs import log
from journey_conversions.store.outbox import NOTIFY_CHANNEL

POLL_SECONDS = 1.0


class Notifier:
    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._conn: asyncpg.Connection | None = None

    async def start(self, url: str) -> None:
        try:
            self._conn = await asyncpg.connect(url)
            await self._conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
        except (OSError, asyncpg.PostgresError) as error:
            log.warning("conversion-event notifications off; streams poll", error=str(error))

    async def stop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None

    def _on_notify(self, _conn: object, _pid: int, _channel: str, tenant_id: object) -> None:
        for event in self._waiters.get(str(tenant_id), ()):
            event.set()

    def subscribe(self, tenant_id: str) -> Subscription:
        return Subscription(self._waiters[tenant_id])


class Subscription:
    """A stream's wake-up event for one tenant."""

    def __init__(self, waiters: set[asyncio.Event]) -> None:
        self.event = asyncio.Event()
        self._waiters = waiters

    def __enter__(self) -> Subscription:
        self._waiters.add(self.event)
        return self

    def __exit__(self, *_: object) -> None:
        self._waiters.discard(self.event)

    def rearm(self) -> None:
        """Call before reading: a commit after this point wakes the next wait."""
        self.event.clear()

    async def wait(self, stopping: asyncio.Event) -> None:
        """Until new events may exist, the server stops, or the poll interval passes."""
        waits = [asyncio.ensure_future(self.event.wait()), asyncio.ensure_future(stopping.wait())]
        try:
            await asyncio.wait(waits, timeout=POLL_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
