"""Definitions that arrive after the events they apply to re-decide those events.

A journey's first goal and a conversion's first trigger are in force from the start of time
(the catalog stores them without an effective time), so the stored outcomes and awards must be
what they would be had the definition come first: the result depends on the set of events,
never on their arrival order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from journeys.conversions.v1 import conversions_pb2
from journeys.conversions.v1 import service_pb2 as pb

from tests.builders import ago, define_journey, enter, goal, goal_event, message, touchpoint

if TYPE_CHECKING:
    from tests.builders import Stub

FORM_F = goal("FORM_SUBMITTED", form_ids=["f"])


async def contact_with_a_form_submission(stub: Stub) -> None:
    """c1 entered "spring" 10 days ago, got its email 5 days ago, submitted form f 3 days ago."""
    await stub.EnterJourney(enter("e1", "c1", "spring", ago(days=10)))
    await stub.BatchRecordTouchpoints(
        pb.BatchRecordTouchpointsRequest(
            touchpoints=[touchpoint("t1", "c1", "spring", "spring-email", ago(days=5))]
        )
    )
    await stub.RecordGoalEvent(
        pb.RecordGoalEventRequest(
            goal_event=goal_event("g1", "c1", "FORM_SUBMITTED", ago(days=3), form_id="f")
        )
    )


async def awards(stub: Stub) -> dict[tuple[str, str], tuple[int, str]]:
    """(enrollment, conversion) -> (source, goal event) of spring's awards."""
    listed = await stub.ListConversionAwards(pb.ListConversionAwardsRequest(journey_id="spring"))
    return {(a.enrollment_id, a.conversion_id): (a.source, a.goal_event_id) for a in listed.awards}


class TestLateConversionDefinition:
    """A conversion whose trigger is defined after a matching goal event still awards it."""

    async def test_conversion_defined_after_matching_goal_event_awards_it(self, stub: Stub) -> None:
        await stub.DefineJourney(define_journey("spring", [message("spring-email")]))
        await contact_with_a_form_submission(stub)
        await stub.DefineConversion(
            pb.DefineConversionRequest(
                request_id="define-booked",
                conversion=conversions_pb2.ConversionDefinition(
                    conversion_id="booked", journey_id="spring", name="Booked", trigger=FORM_F
                ),
            )
        )
        assert await awards(stub) == {
            ("e1", "booked"): (conversions_pb2.AWARD_SOURCE_TRIGGER, "g1"),
        }


class TestLateFirstGoal:
    """A journey's first goal, set after a matching goal event, converts it."""

    async def test_first_goal_set_after_matching_goal_event_converts_it(self, stub: Stub) -> None:
        await stub.DefineJourney(define_journey("spring", [message("spring-email")]))
        await contact_with_a_form_submission(stub)
        await stub.DefineJourney(
            define_journey(
                "spring", [message("spring-email")], FORM_F, request_id="define-spring-goal"
            )
        )
        explained = await stub.ExplainGoalEvent(pb.ExplainGoalEventRequest(event_id="g1"))
        outcome = explained.explanation.outcome
        assert (outcome.status, outcome.enrollment_id) == (
            conversions_pb2.OUTCOME_STATUS_CONVERTED,
            "e1",
        )
        assert await awards(stub) == {("e1", ""): (conversions_pb2.AWARD_SOURCE_ATTRIBUTION, "g1")}
