"""A server keeps the journey rules it read (store/rules.py) while their revision holds
(migration 0008): a definition made through another replica applies to its very next goal event.

Replica A reads spring's rules with a first goal event, then replica B changes them; A's next
goal event must be decided by B's rules, as a re-decision on B decides the same situation.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import grpc
from journeys.conversions.v1 import conversions_pb2, service_pb2_grpc
from journeys.conversions.v1 import service_pb2 as pb

from tests.builders import ago, define_journey, enter, goal, goal_event, message, touchpoint, ts
from tests.processes import serve

if TYPE_CHECKING:
    from tests.builders import Stub

CONVERTED = conversions_pb2.OUTCOME_STATUS_CONVERTED
NOT_CONVERTED = conversions_pb2.OUTCOME_STATUS_NOT_CONVERTED
ORDER = goal("ORDER_PLACED")
FORM_F = goal("FORM_SUBMITTED", form_ids=["f"])


async def enrolled_and_touched(stub: Stub) -> None:
    """c1 to c3 entered spring 10 days ago; c1 and c2 got its email 3 days ago, c3 12 hours ago."""
    for n, touched in ((1, ago(days=3)), (2, ago(days=3)), (3, ago(hours=12))):
        await stub.EnterJourney(enter(f"e{n}", f"c{n}", "spring", ago(days=10)))
        await stub.RecordTouchpoint(
            pb.RecordTouchpointRequest(
                touchpoint=touchpoint(f"t{n}", f"c{n}", "spring", "email", touched)
            )
        )


async def status_of(stub: Stub, event: pb.RecordGoalEventRequest) -> int:
    return int((await stub.RecordGoalEvent(event)).outcome.status)


async def test_rules_changed_through_another_replica_decide_the_next_goal_event(
    database_url: str,
) -> None:
    async with (
        serve("--database-url", database_url) as a,
        serve("--database-url", database_url) as b,
        grpc.aio.insecure_channel(a.target) as channel_a,
        grpc.aio.insecure_channel(b.target) as channel_b,
    ):
        replica_a: Stub = service_pb2_grpc.JourneyConversionsServiceStub(channel_a)
        replica_b: Stub = service_pb2_grpc.JourneyConversionsServiceStub(channel_b)
        await replica_a.DefineJourney(
            define_journey("spring", [message("email")], ORDER, window_days=7)
        )
        await enrolled_and_touched(replica_a)
        # A reads spring's rules: a week's window, orders convert.
        order = goal_event("g1", "c1", "ORDER_PLACED", ago(hours=1))
        assert await status_of(replica_a, pb.RecordGoalEventRequest(goal_event=order)) == CONVERTED

        # B narrows the window to a day: the email (3 days before) no longer counts. B
        # re-decides c1's order; A decides c2's order the same way.
        await replica_b.DefineJourney(
            define_journey("spring", [message("email")], ORDER, request_id="narrow", window_days=1)
        )
        redecided = await replica_b.ExplainGoalEvent(pb.ExplainGoalEventRequest(event_id="g1"))
        assert redecided.explanation.outcome.status == NOT_CONVERTED
        order = goal_event("g2", "c2", "ORDER_PLACED", ago(hours=1))
        assert (
            await status_of(replica_a, pb.RecordGoalEventRequest(goal_event=order)) == NOT_CONVERTED
        )

        # B makes form f the goal from now on (the window stays a day): c3's submission, sent
        # to A after that, converts (under the goal A read first it met none).
        await replica_b.DefineJourney(
            define_journey("spring", [message("email")], FORM_F, request_id="form", window_days=1)
        )
        # (a second from now, within the allowed clock skew: the new goal is in force from B's
        # instant of defining it, and a timestamp here may lose its fraction of a second)
        soon = ts(datetime.now(UTC) + timedelta(seconds=1))
        submission = goal_event("g3", "c3", "FORM_SUBMITTED", soon, form_id="f")
        assert (
            await status_of(replica_a, pb.RecordGoalEventRequest(goal_event=submission))
            == CONVERTED
        )
