"""Admission on its own (tests/api/test_overload.py drives it through a real server): a freed
slot goes to the call that has waited longest among those whose tenant is under its limit,
and a call that stops waiting, refused or cancelled, leaves no slot taken and no place in the
queue."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from journey_conversions.admission import Admission, Limits
from journey_conversions.errors import ServiceError

LIMITS = Limits(in_flight=2, in_flight_per_tenant=1, queue_seconds=5.0, streams_per_tenant=1)


class Holder:
    """A call that holds its slot until released; `admitted` is set once it has one."""

    def __init__(self, admission: Admission, tenant_id: str, wait: float | None = None) -> None:
        self.admitted = asyncio.Event()
        self._release = asyncio.Event()
        self.task = asyncio.ensure_future(self._run(admission, tenant_id, wait))

    async def _run(self, admission: Admission, tenant_id: str, wait: float | None) -> None:
        async with admission.call(tenant_id, wait):
            self.admitted.set()
            await self._release.wait()

    async def release(self) -> None:
        self._release.set()
        await self.task


async def settle() -> None:
    """Lets every callback and task that is ready run."""
    for _ in range(5):
        await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def full(admission: Admission) -> AsyncIterator[tuple[Holder, Holder]]:
    """Tenants a and b each hold their one slot, which fills the server."""
    held = Holder(admission, "a"), Holder(admission, "b")
    await settle()
    assert all(h.admitted.is_set() for h in held) and admission.running == 2
    yield held


async def test_a_freed_slot_goes_to_the_longest_waiting_call_that_fits() -> None:
    admission = Admission(LIMITS)
    async with full(admission) as (a0, b0):
        waiting = [Holder(admission, tenant) for tenant in ("a", "c", "c")]
        await settle()
        assert not any(h.admitted.is_set() for h in waiting)
        # b's slot frees: a still holds its one, so the first c gets it, not the a before it.
        await b0.release()
        await settle()
        assert [h.admitted.is_set() for h in waiting] == [False, True, False]
        await a0.release()
        await settle()
        assert [h.admitted.is_set() for h in waiting] == [True, True, False]
        assert admission.running == 2
        await waiting[1].release()  # c's slot: its second call, the last one waiting
        await settle()
        assert waiting[2].admitted.is_set()
        for holder in (waiting[0], waiting[2]):
            await holder.release()
    assert admission.running == 0


async def test_a_call_refused_after_its_wait_leaves_nothing_behind() -> None:
    admission = Admission(LIMITS)
    async with full(admission) as (a0, b0):
        late = Holder(admission, "c", wait=0.01)
        with pytest.raises(ServiceError) as refused:
            await late.task
        assert refused.value.reason == "OVERLOADED"
        after = Holder(admission, "c")
        await b0.release()
        await settle()
        assert after.admitted.is_set()  # the refused call did not take the freed slot
        await a0.release()
        await after.release()
    assert admission.running == 0


async def test_a_cancelled_waiting_call_leaves_its_place_and_any_slot_it_was_handed() -> None:
    admission = Admission(LIMITS)
    held_by_a = Holder(admission, "a")
    held_by_b = admission.call("b", None)  # entered and left by hand: no task switch between
    await held_by_b.__aenter__()
    gone, handed = Holder(admission, "c"), Holder(admission, "d")
    await settle()
    gone.task.cancel()
    await settle()
    await held_by_b.__aexit__(None, None, None)  # hands b's slot to `handed` (`gone` left)...
    handed.task.cancel()  # ...which is cancelled before it wakes: the slot comes back
    for holder in (gone, handed):
        with pytest.raises(asyncio.CancelledError):
            await holder.task
    assert admission.running == 1
    after = Holder(admission, "e")
    await settle()
    assert after.admitted.is_set()
    await held_by_a.release()
    await after.release()
    assert admission.running == 0
