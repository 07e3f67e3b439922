"""The server's housekeeping, in the background: monthly partitions created ahead of the events
that need them and, when configured, retention (store/retention.py).

Partitions are prepared once before the server takes calls (build awaits `start`), then every
`interval`; each run covers the oldest time accepted now to AHEAD past the latest, so a write
always finds its month. Replicas doing the same at once is harmless: creating a partition is
idempotent and serialized in the database, and retention runs in one replica at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

import asyncpg

from journey_conversions import clock, db
from journey_conversions.clock import TimePolicy
from journey_conversions.logs import log
from journey_conversions.store import partitions, retention

INTERVAL = timedelta(hours=1)


async def prepare(pool: asyncpg.Pool, policy: TimePolicy, now: datetime) -> int:
    """Creates the partitions of every time accepted now and of the next AHEAD."""
    bounds = policy.bounds(now)
    async with db.connection(pool) as conn:
        return await partitions.ensure_between(
            conn, bounds.earliest, bounds.latest + partitions.AHEAD
        )


class Maintenance:
    def __init__(
        self,
        pool: asyncpg.Pool,
        policy: TimePolicy,
        retention_every: timedelta | None,
        interval: timedelta = INTERVAL,
    ) -> None:
        self.pool = pool
        self.policy = policy
        self.retention_every = retention_every
        self.interval = interval
        self._last_retention: datetime | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await prepare(self.pool, self.policy, clock.utc_now())
        self._task = asyncio.create_task(self._run(), name="maintenance")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await self._once()
            await asyncio.sleep(self.interval.total_seconds())

    async def _once(self) -> None:
        now = clock.utc_now()
        try:
            created = await prepare(self.pool, self.policy, now)
            if created:
                log.info("partitions created", count=created)
            if self._retention_due(now):
                self._last_retention = now
                outcome = await retention.apply(self.pool, self.policy, now)
                if outcome.dropped:
                    log.info(
                        "retention dropped history",
                        cutoff=outcome.plan.cutoff.isoformat(),
                        partitions=[p.name for p in outcome.dropped],
                        ids_deleted=outcome.ids_deleted,
                    )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            # The database out of reach, or busy: the next run tries again.
            log.warning("maintenance failed", error=str(error))

    def _retention_due(self, now: datetime) -> bool:
        if self.retention_every is None:
            return False
        return self._last_retention is None or now - self._last_retention >= self.retention_every
