"""The service end to end through the generated stubs: define, enter, touch, convert, report."""

from __future__ import annotations

from typing import TYPE_CHECKING

from journeys.conversions.v1 import conversions_pb2, events_pb2
from journeys.conversions.v1 import service_pb2 as pb

from tests.builders import ago, define_journey, enter, goal, goal_event, message, touchpoint

if TYPE_CHECKING:
    from tests.builders import Stub


class TestHappyPath:
    """A contact enters, is touched by an email, orders: the journey gets the conversion."""

    async def test_order_after_email_click_converts_and_is_reported(self, stub: Stub) -> None:
        await stub.DefineJourney(
            define_journey("welcome", [message("email-1")], goal("ORDER_PLACED"))
        )
        await stub.EnterJourney(enter("e1", "c1", "welcome", ago(days=2)))
        await stub.RecordTouchpoint(
            pb.RecordTouchpointRequest(
                touchpoint=touchpoint(
                    "t1", "c1", "welcome", "email-1", ago(days=1), action="CLICKED"
                )
            )
        )
        response = await stub.RecordGoalEvent(
            pb.RecordGoalEventRequest(
                goal_event=goal_event("g1", "c1", "ORDER_PLACED", ago(hours=1))
            )
        )
        assert response.outcome.status == conversions_pb2.OUTCOME_STATUS_CONVERTED
        assert response.outcome.journey_id == "welcome"
        assert response.outcome.message_id == "email-1"

        report = (
            await stub.GetJourneyReport(pb.GetJourneyReportRequest(journey_id="welcome"))
        ).report
        assert (report.entered, report.active, report.exited, report.engaged) == (1, 1, 0, 1)
        assert report.goal_conversions == 1
        assert report.conversion_rate_entered == 1.0
        (email,) = report.messages
        assert email.credited_conversions == 1
        assert [(c.action, c.count) for c in email.touchpoints] == [
            (events_pb2.TOUCHPOINT_ACTION_CLICKED, 1)
        ]
