"""Bounded concurrency: how many unary calls run at once, overall and per tenant, and how many
conversion-event streams a tenant keeps open. Beyond the bound a call waits a little (never
past its deadline) for a slot, then gets RESOURCE_EXHAUSTED (reason OVERLOADED: nothing was
done, so any call may be retried after a backoff). One tenant's flood therefore queues behind
its own limit instead of taking every slot (and every pooled connection) from the others."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict, deque
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
    """The slots of a server. Counters, not locks: the event loop runs one call at a time.
    A freed slot is handed to the call of a fitting tenant that has waited longest, counted
    as its own before it wakes (a call arriving meanwhile cannot take it), instead of waking
    every waiting call to look: under overload hundreds wait, and waking them all at each
    release cost more than the calls."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._running = 0
        self._per_tenant: defaultdict[str, int] = defaultdict(int)
        self._streams: defaultdict[str, int] = defaultdict(int)
        # The calls waiting for a slot by tenant, oldest first; tenants in the order they
        # began waiting. Every future here is pending: a call that stops waiting leaves.
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}

    def _fits(self, tenant_id: str) -> bool:
        return (
            self._running < self.limits.in_flight
            and self._per_tenant.get(tenant_id, 0) < self.limits.in_flight_per_tenant
        )

    def _take(self, tenant_id: str) -> None:
        self._running += 1
        self._per_tenant[tenant_id] += 1

    def _give_back(self, tenant_id: str) -> None:
        self._running -= 1
        self._per_tenant[tenant_id] -= 1
        if not self._per_tenant[tenant_id]:
            del self._per_tenant[tenant_id]
        self._hand_over()

    def _hand_over(self) -> None:
        for tenant_id in list(self._waiting):
            if self._running >= self.limits.in_flight:
                return
            queue = self._waiting[tenant_id]
            while queue and self._fits(tenant_id):
                self._take(tenant_id)
                queue.popleft().set_result(None)
            if not queue:
                del self._waiting[tenant_id]

    def _leave(self, tenant_id: str, admitted: asyncio.Future[None]) -> None:
        queue = self._waiting.get(tenant_id)
        if queue is not None and admitted in queue:
            queue.remove(admitted)
            if not queue:
                del self._waiting[tenant_id]

    def _refuse(self, tenant_id: str, admitted: asyncio.Future[None]) -> None:
        if admitted.done():  # handed a slot at the same instant
            return
        self._leave(tenant_id, admitted)
        REJECTED.labels("in_flight").inc()
        admitted.set_exception(
            overloaded(
                f"the server is at its limit of calls in flight"
                f" ({self.limits.in_flight} in all,"
                f" {self.limits.in_flight_per_tenant} per tenant); retry after a backoff"
            )
        )

    async def _slot(self, tenant_id: str, wait: float) -> None:
        """Waits up to `wait` seconds to be handed a slot; OVERLOADED when none came."""
        loop = asyncio.get_running_loop()
        admitted: asyncio.Future[None] = loop.create_future()
        self._waiting.setdefault(tenant_id, deque()).append(admitted)
        timer = loop.call_later(wait, self._refuse, tenant_id, admitted)
        try:
            await admitted
        except asyncio.CancelledError:
            if admitted.done() and not admitted.cancelled() and admitted.exception() is None:
                self._give_back(tenant_id)  # handed a slot, then cancelled before waking
            else:
                self._leave(tenant_id, admitted)
            raise
        finally:
            timer.cancel()

    @contextlib.asynccontextmanager
    async def call(self, tenant_id: str, time_remaining: float | None) -> AsyncIterator[None]:
        """A slot for one unary call of `tenant_id` for the duration of the block."""
        if self._fits(tenant_id):
            self._take(tenant_id)
        else:
            wait = self.limits.queue_seconds
            if time_remaining is not None:
                wait = min(wait, max(time_remaining, 0.0))
            await self._slot(tenant_id, wait)
        try:
            yield
        finally:
            self._give_back(tenant_id)

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
