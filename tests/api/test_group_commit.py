"""Group commit (group_commit.py): concurrent unary writes share transactions, and each call
still gets exactly its own answer, after COMMIT.

Through a real server on its own database: floods of concurrent RecordTouchpoint, EnterJourney
and RecordGoalEvent calls are written in fewer transactions than calls (the server's
jc_group_commit_items histogram, read in-process), every item is stored once, a refused item
fails only its own call, and each goal event's answer carries its own outcome. And the
GroupCommit class on a real pool: a batch that fails as a whole is written again item by item,
so only the item at fault fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg
import grpc
import pytest
from journeys.conversions.v1 import conversions_pb2
from journeys.conversions.v1 import service_pb2 as pb

from journey_conversions import metrics
from journey_conversions.group_commit import GroupCommit
from tests.builders import (
    ago,
    define_journey,
    enter,
    error_reason,
    goal,
    goal_event,
    message,
    touchpoint,
)

if TYPE_CHECKING:
    from journey_conversions.server import App
    from tests.builders import Stub

CALLS = 200


def batches_and_items(kind: str) -> tuple[float, float]:
    """How many shared transactions wrote items of `kind` so far, and how many items."""
    count = total = 0.0
    for family in metrics.GROUP_COMMIT_ITEMS.collect():
        for sample in family.samples:
            if sample.labels.get("kind") != kind:
                continue
            if sample.name.endswith("_count"):
                count += sample.value
            elif sample.name.endswith("_sum"):
                total += sample.value
    return count, total


async def stored(app: App, table: str) -> int:
    async with app.pool.acquire() as conn:
        found = await conn.fetchval(f"select count(*) from {table}")
    assert isinstance(found, int)
    return found


@pytest.fixture
async def welcome(stub: Stub) -> None:
    await stub.DefineJourney(define_journey("welcome", [message("email-1")], goal("ORDER_PLACED")))


@pytest.mark.usefixtures("welcome")
async def test_concurrent_touchpoints_share_transactions_and_each_is_stored_once(
    app: App, stub: Stub
) -> None:
    batches_before, items_before = batches_and_items("touchpoint")
    requests = [
        pb.RecordTouchpointRequest(
            touchpoint=touchpoint(f"t{i}", f"c{i % 37}", "welcome", "email-1", ago(minutes=i))
        )
        for i in range(CALLS)
    ]
    replies = await asyncio.gather(*(stub.RecordTouchpoint(r) for r in requests))
    assert [r.touchpoint.event_id for r in replies] == [f"t{i}" for i in range(CALLS)]
    batches_after, items_after = batches_and_items("touchpoint")
    assert items_after - items_before == CALLS
    assert batches_after - batches_before < CALLS / 2  # shared, not one transaction each
    assert await stored(app, "touchpoints") == CALLS

    # Repeats, concurrent with each other: all OK, nothing doubled.
    await asyncio.gather(*(stub.RecordTouchpoint(r) for r in requests[:50] * 2))
    assert await stored(app, "touchpoints") == CALLS


@pytest.mark.usefixtures("welcome")
async def test_a_refused_item_fails_only_its_own_call(app: App, stub: Stub) -> None:
    def request(i: int) -> pb.RecordTouchpointRequest:
        journey = "nowhere" if i % 10 == 3 else "welcome"  # every tenth names no journey
        return pb.RecordTouchpointRequest(
            touchpoint=touchpoint(f"t{i}", f"c{i}", journey, "email-1", ago(minutes=i))
        )

    outcomes = await asyncio.gather(
        *(stub.RecordTouchpoint(request(i)) for i in range(100)), return_exceptions=True
    )
    for i, outcome in enumerate(outcomes):
        if i % 10 == 3:
            assert isinstance(outcome, grpc.aio.AioRpcError)
            assert outcome.code() == grpc.StatusCode.NOT_FOUND
            assert error_reason(outcome) == "JOURNEY_NOT_FOUND"
        else:
            assert isinstance(outcome, pb.RecordTouchpointResponse), outcome
    assert await stored(app, "touchpoints") == 90


@pytest.mark.usefixtures("welcome")
async def test_concurrent_entries_answer_each_enrollment_as_stored(app: App, stub: Stub) -> None:
    batches_before, _ = batches_and_items("enrollment")
    requests = [enter(f"e{i}", f"c{i}", "welcome", ago(days=1, minutes=i)) for i in range(CALLS)]
    replies = await asyncio.gather(*(stub.EnterJourney(r) for r in requests))
    for request, reply in zip(requests, replies, strict=True):
        assert reply.enrollment.enrollment_id == request.enrollment.enrollment_id
        assert reply.enrollment.contact_id == request.enrollment.contact_id
        assert reply.enrollment.enter_time == request.enrollment.enter_time
    batches_after, _ = batches_and_items("enrollment")
    assert batches_after - batches_before < CALLS / 2
    assert await stored(app, "enrollments") == CALLS


@pytest.mark.usefixtures("welcome")
async def test_concurrent_goal_events_each_get_their_own_outcome(stub: Stub) -> None:
    """Half the contacts were touched (their order converts), half were not (no journey)."""
    contacts = 60
    await asyncio.gather(
        *(
            stub.EnterJourney(enter(f"e{i}", f"c{i}", "welcome", ago(days=2)))
            for i in range(contacts)
        )
    )
    await asyncio.gather(
        *(
            stub.RecordTouchpoint(
                pb.RecordTouchpointRequest(
                    touchpoint=touchpoint(f"t{i}", f"c{i}", "welcome", "email-1", ago(days=1))
                )
            )
            for i in range(0, contacts, 2)
        )
    )
    replies = await asyncio.gather(
        *(
            stub.RecordGoalEvent(
                pb.RecordGoalEventRequest(
                    goal_event=goal_event(f"g{i}", f"c{i}", "ORDER_PLACED", ago(hours=1))
                )
            )
            for i in range(contacts)
        )
    )
    for i, reply in enumerate(replies):
        assert reply.goal_event.event_id == f"g{i}"
        assert reply.outcome.goal_event_id == f"g{i}"
        if i % 2 == 0:
            assert reply.outcome.status == conversions_pb2.OUTCOME_STATUS_CONVERTED
            assert reply.outcome.touchpoint_event_id == f"t{i}"
        else:
            assert reply.outcome.status != conversions_pb2.OUTCOME_STATUS_CONVERTED


class ItemAtFault(Exception):
    pass


async def test_a_batch_failing_as_a_whole_is_written_item_by_item(database_url: str) -> None:
    """A writer that breaks the whole transaction when it meets item 13: the other calls of
    its batch are answered and committed, 13 alone fails."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    assert pool is not None
    try:
        await pool.execute("create table written (item integer primary key)")

        async def write(
            conn: asyncpg.Connection, tenant_id: str, items: Sequence[int], horizon: datetime
        ) -> list[int]:
            await conn.execute("insert into written select unnest($1::int[])", list(items))
            if 13 in items:
                raise ItemAtFault
            return [item * 2 for item in items]

        group = GroupCommit(pool, parallel=1, parallel_by_kind={})
        horizon = datetime.now().astimezone()
        outcomes = await asyncio.gather(
            *(group.write("test", "tenant", i, horizon, write) for i in range(40)),
            return_exceptions=True,
        )
        for i, outcome in enumerate(outcomes):
            if i == 13:
                assert isinstance(outcome, ItemAtFault)
            else:
                assert outcome == i * 2
        rows = await pool.fetch("select item from written order by item")
        assert [r["item"] for r in rows] == [i for i in range(40) if i != 13]
        await group.drain()
    finally:
        await pool.close()
