"""Keeps the health service in step with the database: NOT_SERVING while it is out of reach,
SERVING again once it answers, without a restart.

A DatabaseWatch probes the pool (`select 1`, every PROBE_INTERVAL_SECONDS while healthy, every
RETRY_INTERVAL_SECONDS after a failure). Every step of a probe has PROBE_TIMEOUT_SECONDS, so a
network that drops packets cannot hang it; the probe holds its pooled connection only for the
`select 1`, and drops one that did not answer rather than wait on it. A pool with every
connection in use says nothing either way (no change). FAILURES_BEFORE_UNREACHABLE failed
probes in a row turn the health NOT_SERVING (one stale pooled connection is not an outage: the
pool replaces it and the second probe gets a new one); one answered probe turns it SERVING
again. Only those transitions touch the health service, and each is logged once.

A call that saw the database unavailable can make every running watch probe now instead of at
its next tick: `notice_unavailable()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Iterable

import asyncpg
from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer

from journey_conversions.logs import log

PROBE_INTERVAL_SECONDS = 1.0
RETRY_INTERVAL_SECONDS = 0.25
PROBE_TIMEOUT_SECONDS = 2.0
FAILURES_BEFORE_UNREACHABLE = 2
# A burst of notices from failing calls probes at most this often.
MIN_PROBE_GAP_SECONDS = 0.1

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

_running: weakref.WeakSet[DatabaseWatch] = weakref.WeakSet()


def notice_unavailable() -> None:
    """A call saw the database unavailable: every running watch probes now (synchronous and
    cheap; the probe, not the call, decides the health status)."""
    for watch in list(_running):
        watch.notice_unavailable()


class DatabaseWatch:
    """Probes `pool` and sets `services` of `health` NOT_SERVING / SERVING accordingly."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        health: HealthServicer,
        services: Iterable[str],
        *,
        interval: float = PROBE_INTERVAL_SECONDS,
        retry_interval: float = RETRY_INTERVAL_SECONDS,
        timeout: float = PROBE_TIMEOUT_SECONDS,
        failures_before_unreachable: int = FAILURES_BEFORE_UNREACHABLE,
    ) -> None:
        self.pool = pool
        self.health = health
        self.services = tuple(services)
        self.interval = interval
        self.retry_interval = retry_interval
        self.timeout = timeout
        self.failures_before_unreachable = failures_before_unreachable
        self.reachable = True  # build() checked it: the pool was created
        self._failures = 0
        self._wake = asyncio.Event()
        self._stopped = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="database-watch")
        _running.add(self)

    def notice_unavailable(self) -> None:
        """Probe now rather than at the next tick."""
        self._wake.set()

    async def stop(self) -> None:
        """Ends the watch; it sets no health status after this (call before the pool closes)."""
        self._stopped = True
        _running.discard(self)
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
            self._task = None

    async def _run(self) -> None:
        while not self._stopped:
            await self._pause()
            self._wake.clear()
            answered, error = await self.probe()
            if answered is True:
                self._failures = 0
                if not self.reachable:
                    await self._set(reachable=True)
                    log.info("database reachable again")
            elif answered is False:
                self._failures += 1
                if self.reachable and self._failures >= self.failures_before_unreachable:
                    await self._set(reachable=False)
                    log.warning("database unreachable", error=error)

    async def _pause(self) -> None:
        delay = self.interval if self.reachable and not self._failures else self.retry_interval
        gap = min(delay, MIN_PROBE_GAP_SECONDS)
        await asyncio.sleep(gap)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay - gap)

    async def probe(self) -> tuple[bool | None, str]:
        """(True, "") when the database answered, (False, why) when it did not, (None, why) when
        no connection was free in time: a busy pool says nothing about the database."""
        try:
            # Each step below has its own timeout; this one is the backstop.
            async with asyncio.timeout(3 * self.timeout + 1):
                return await self._select_one()
        except TimeoutError:
            return False, f"no answer within {self.timeout:g} s"
        except Exception as error:
            return False, str(error) or repr(error)

    async def _select_one(self) -> tuple[bool | None, str]:
        try:
            conn = await self.pool.acquire(timeout=self.timeout)
        except TimeoutError:
            if self.pool.get_size() - self.pool.get_idle_size() >= self.pool.get_max_size():
                return None, "every pooled connection is in use"
            raise
        try:
            await conn.fetchval("select 1", timeout=self.timeout)
        except BaseException:
            # No waiting on a connection that did not answer (its cancel request may get no
            # answer either): the pool opens a new one when it needs one.
            conn.terminate()
            raise
        finally:
            try:
                await self.pool.release(conn, timeout=self.timeout)  # nothing, once terminated
            except Exception as error:  # a broken connection: the pool replaces it
                log.debug("database probe: release failed", error=str(error))
        return True, ""

    async def _set(self, *, reachable: bool) -> None:
        if self._stopped:
            return
        self.reachable = reachable
        # HealthServicer.set ignores every change once graceful shutdown has begun.
        for name in self.services:
            await self.health.set(name, _SERVING if reachable else _NOT_SERVING)
