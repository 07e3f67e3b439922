"""Bounded concurrency: how many unary calls run at once, overall and per tenant, and how many
conversion-event streams a tenant keeps open. Beyond the bound a call waits a little (never
past its deadline) for a slot, then gets RESOURCE_EXHAUSTED (reason OVERLOADED: nothing was
done, so any call may be retried after a backoff). One tenant's flood therefore queues behind
its own limit instead of taking every slot (and every pooled connection) from the others."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import grpc

from journey_conversions.errors import ServiceError
from journey_conversions.metrics import REJECTED

OVERLOADED = "OVERLOADED"


@dataclass(frozen=True, slots=True)
class Limits:
    in_flight: int  # unary calls running at once, overall
    in_flight_per_tenant: int
    queue_seconds: float  # longest wait for a slot (shorter when the deadline is nearer)
    streams_per_tenant: int

    def __post_init__(self) -> None:
        if min(self.in_flight, self.in_flight_per_tenant, self.streams_per_tenant) < 1:
            raise ValueError("limits must be at least 1")


DEFAULT_LIMITS = Limits(
    in_flight=64, in_flight_per_tenant=32, queue_seconds=1.0, streams_per_tenant=8
)


def overloaded(message: str) -> ServiceError:
    return ServiceError(OVERLOADED, message, code=grpc.StatusCode.RESOURCE_EXHAUSTED)


class Admission:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._running = 0
        self._per_tenant: defaultdict[str, int] = defaultdict(int)
        self._streams: defaultdict[str, int] = defaultdict(int)
        self._freed = asyncio.Condition()

    def _fits(self, tenant_id: str) -> bool:
        return (
            self._running < self.limits.in_flight
            and self._per_tenant[tenant_id] < self.limits.in_flight_per_tenant
        )

    @contextlib.asynccontextmanager
    async def call(self, tenant_id: str, time_remaining: float | None) -> AsyncIterator[None]:
        """A slot for one unary call of `tenant_id` for the duration of the block."""
        wait = self.limits.queue_seconds
        if time_remaining is not None:
            wait = min(wait, max(time_remaining, 0.0))
        async with self._freed:
            if not self._fits(tenant_id):
                try:
                    await asyncio.wait_for(
                        self._freed.wait_for(lambda: self._fits(tenant_id)), wait
                    )
                except TimeoutError:
                    REJECTED.labels("in_flight").inc()
                    raise overloaded(
                        f"the server is at its limit of calls in flight"
                        f" ({self.limits.in_flight} in all,"
                        f" {self.limits.in_flight_per_tenant} per tenant); retry after a backoff"
                    ) from None
            self._running += 1
            self._per_tenant[tenant_id] += 1
        try:
            yield
        finally:
            async with self._freed:
                self._running -= 1
                self._per_tenant[tenant_id] -= 1
                if not self._per_tenant[tenant_id]:
                    del self._per_tenant[tenant_id]
                self._freed.notify_all()

    @contextlib.contextmanager
    def stream(self, tenant_id: str) -> Iterator[None]:
        """A slot for one open stream of `tenant_id`; RESOURCE_EXHAUSTED at once beyond the
        limit (a stream is long-lived: waiting for another to end makes no sense)."""
        if self._streams[tenant_id] >= self.limits.streams_per_tenant:
            REJECTED.labels("streams").inc()
            raise overloaded(
                f"this tenant already has {self.limits.streams_per_tenant} conversion-event"
                " streams open; close one or retry after a backoff"
            )
        self._streams[tenant_id] += 1
        try:
            yield
        finally:
            self._streams[tenant_id] -= 1
            if not self._streams[tenant_id]:
                del self._streams[tenant_id]

    @property
    def running(self) -> int:
        return self._running

    def open_streams(self, tenant_id: str) -> int:
        return self._streams.get(tenant_id, 0)
